import { json, type HttpHandler } from "../lib/http";
import {
  authenticateRequest,
  withRequestLimit,
  getSessionRecord,
  retrievableSession,
  type SessionDeps,
} from "../lib/sessions";

/**
 * `GET /v1/sessions/{id}`: one session of the caller's project; a running one with its
 * connectUrl (fresh token) for reconnecting, never the bare signingKey field.
 */
export function getSessionHandler(deps: SessionDeps): HttpHandler {
  return withRequestLimit(deps, async (event) => {
    const principal = await authenticateRequest(event, deps);
    const record = await getSessionRecord(principal, event.pathParameters?.id ?? "", deps);
    return json(200, await retrievableSession(record, deps));
  });
}
