import { listProjects } from "../lib/apikeys";
import { describeCause } from "../lib/http";
import type { Metrics } from "../lib/metrics";
import { keyDirectory, projectDefaults, type SessionDeps } from "../lib/sessions";
import type { Tracing } from "../lib/tracing";

/** What one sweep did. */
export interface SweepResult {
  projects: number;
  timedOut: number;
  failed: number;
}

/**
 * The timeout sweep, run on a schedule (every minute, deployed; every few seconds, locally): for
 * every project the API-key secret knows, ends the sessions whose expiresAt has passed, marking
 * them TIMED_OUT and counting their minutes in the project's usage in the same Redis step. So a
 * session that timed out is counted, and its slot shows as free, even if nobody ever reads it.
 * A project that fails is logged and the others still run; the run then throws, so the function's
 * error metric shows it. Each project's ended sessions count in `SessionsEnded`; the metrics are
 * flushed once per run, and the run is one trace subsegment where tracing is on.
 */
export function sweepHandler(
  deps: SessionDeps & { metrics?: Metrics; tracing?: Tracing },
): (event?: unknown, context?: { awsRequestId?: string }) => Promise<SweepResult> {
  const sweep = async (): Promise<SweepResult> => {
    const projects = listProjects(await keyDirectory(deps), projectDefaults(deps.config));
    const result: SweepResult = { projects: projects.length, timedOut: 0, failed: 0 };
    for (const project of projects) {
      try {
        const ended = await deps.store.sweepExpired(project.id, deps.now());
        result.timedOut += ended;
        if (ended > 0) deps.metrics?.count("SessionsEnded", ended, { projectId: project.id });
      } catch (error) {
        result.failed++;
        deps.logger.error("timeout sweep failed for a project", {
          projectId: project.id,
          cause: describeCause(error),
        });
      }
    }
    if (result.timedOut > 0 || result.failed > 0) deps.logger.info("timeout sweep", { ...result });
    if (result.failed > 0) throw new Error(`timeout sweep failed for ${result.failed} project(s)`);
    return result;
  };
  const traced = async (): Promise<SweepResult> => {
    const span = deps.tracing?.beginInvocation("sweep-sessions");
    try {
      const result = await sweep();
      span?.end();
      return result;
    } catch (error) {
      span?.end(error);
      throw error;
    } finally {
      deps.metrics?.flush();
    }
  };
  return (_event, context) => {
    // Deployed, every line of a run carries the invocation's id; the local timer's runs have none.
    const requestId = context?.awsRequestId;
    return requestId && deps.logger.inRequest ? deps.logger.inRequest({ requestId }, traced) : traced();
  };
}
