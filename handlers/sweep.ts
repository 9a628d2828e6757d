import { listProjects } from "../lib/apikeys";
import { describeCause } from "../lib/http";
import { keyDirectory, projectDefaults, type SessionDeps } from "../lib/sessions";

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
 * error metric shows it.
 */
export function sweepHandler(deps: SessionDeps): () => Promise<SweepResult> {
  return async () => {
    const projects = listProjects(await keyDirectory(deps), projectDefaults(deps.config));
    const result: SweepResult = { projects: projects.length, timedOut: 0, failed: 0 };
    for (const project of projects) {
      try {
        result.timedOut += await deps.store.sweepExpired(project.id, deps.now());
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
}
