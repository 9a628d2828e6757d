import { apiKeyFrom, json, withErrorHandling, type HttpHandler } from "../lib/http";
import { toSessionView } from "../lib/session";
import { authenticateKey, getSessionRecord, type SessionDeps } from "../lib/sessions";

/** `GET /v1/sessions/{id}`: one session of the caller's project (never its signingKey). */
export function getSessionHandler(deps: SessionDeps): HttpHandler {
  return withErrorHandling(deps.logger, async (event) => {
    const principal = await authenticateKey(apiKeyFrom(event), deps);
    const record = await getSessionRecord(principal, event.pathParameters?.id ?? "", deps);
    return json(200, toSessionView(record, deps.now()));
  });
}
