import { listProjects, resolveProject, type Project } from "../lib/apikeys";
import { BadRequestError, NotFoundError } from "../lib/errors";
import { json, type HttpHandler } from "../lib/http";
import {
  authenticateRequest,
  withRequestLimit,
  keyDirectory,
  projectDefaults,
  type SessionDeps,
} from "../lib/sessions";
import { usageMonth } from "../lib/store";
import type { Principal } from "../lib/apikeys";

/** The caller's project, resolved from the API-key secret (the same rules the limit uses). */
async function ownProject(principal: Principal, deps: SessionDeps): Promise<Project> {
  const directory = await keyDirectory(deps);
  // The key authenticated, so its project resolves (at least as one derived from the key itself).
  return resolveProject(directory, principal.projectId, projectDefaults(deps.config)) as Project;
}

/** Another project's id and an unknown id get the same 404, so project ids cannot be probed. */
function checkOwnProject(principal: Principal, id: string): void {
  if (id !== principal.projectId) throw new NotFoundError(`project ${id.slice(0, 64)} not found`);
}

/** `GET /v1/projects`: the projects this key can see, which is its own project. */
export function listProjectsHandler(deps: SessionDeps): HttpHandler {
  return withRequestLimit(deps, async (event) => {
    const principal = await authenticateRequest(event, deps);
    const directory = await keyDirectory(deps);
    const own = listProjects(directory, projectDefaults(deps.config)).filter(
      (project) => project.id === principal.projectId,
    );
    return json(200, own);
  });
}

/** `GET /v1/projects/{id}`: the caller's project; any other id is a 404. */
export function getProjectHandler(deps: SessionDeps): HttpHandler {
  return withRequestLimit(deps, async (event) => {
    const principal = await authenticateRequest(event, deps);
    checkOwnProject(principal, event.pathParameters?.id ?? "");
    return json(200, await ownProject(principal, deps));
  });
}

const MONTH_PATTERN = /^(\d{4})-(0[1-9]|1[0-2])$/;

/**
 * `GET /v1/projects/{id}/usage[?month=YYYY-MM]`: `{browserMinutes, proxyBytes}` of the sessions
 * that ended in one UTC calendar month (default the current one; kept 400 days). Each ended
 * session counts its minutes rounded up, at least one. The project's expired sessions are ended
 * (and counted) first, so the answer is exact at the moment of the call.
 */
export function projectUsageHandler(deps: SessionDeps): HttpHandler {
  return withRequestLimit(deps, async (event) => {
    const principal = await authenticateRequest(event, deps);
    checkOwnProject(principal, event.pathParameters?.id ?? "");
    const now = deps.now();
    const month = event.queryStringParameters?.month ?? usageMonth(now);
    if (!MONTH_PATTERN.test(month)) {
      throw new BadRequestError(
        `month must be YYYY-MM (a UTC calendar month), got ${JSON.stringify(month.slice(0, 20))}`,
      );
    }
    await deps.store.sweepExpired(principal.projectId, now);
    const usage = await deps.store.usage(principal.projectId, month);
    return json(200, { browserMinutes: usage.browserMinutes, proxyBytes: usage.proxyBytes });
  });
}
