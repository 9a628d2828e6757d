import { BadRequestError } from "../lib/errors";
import { json, type HttpHandler } from "../lib/http";
import { parseMetadataQuery } from "../lib/query";
import { SESSION_STATUSES, type SessionStatus } from "../lib/session";
import { authenticateRequest, withRequestLimit, listSessions, type SessionDeps } from "../lib/sessions";

/** `GET /v1/sessions?status=&q=`: the caller's project's sessions, newest first. */
export function listSessionsHandler(deps: SessionDeps): HttpHandler {
  return withRequestLimit(deps, async (event) => {
    const principal = await authenticateRequest(event, deps);
    const query = event.queryStringParameters ?? {};
    let status: SessionStatus | undefined;
    if (query.status !== undefined && query.status !== "") {
      if (!(SESSION_STATUSES as readonly string[]).includes(query.status)) {
        throw new BadRequestError(`status must be one of ${SESSION_STATUSES.join(", ")}`);
      }
      status = query.status as SessionStatus;
    }
    const metadata = query.q !== undefined && query.q !== "" ? parseMetadataQuery(query.q) : undefined;
    return json(200, await listSessions(principal, { status, metadata }, deps));
  });
}
