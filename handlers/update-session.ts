import { apiKeyFrom, json, withErrorHandling, type HttpHandler } from "../lib/http";
import { readJsonBody, updateSessionBodySchema } from "../lib/schemas";
import { authenticateKey, checkProjectId, releaseSession, type SessionDeps } from "../lib/sessions";

/** `POST /v1/sessions/{id}` with `{"status": "REQUEST_RELEASE"}`: ends the session (idempotent). */
export function updateSessionHandler(deps: SessionDeps): HttpHandler {
  const bodySchema = updateSessionBodySchema();
  return withErrorHandling(deps.logger, async (event) => {
    const principal = await authenticateKey(apiKeyFrom(event), deps);
    const body = readJsonBody(event, bodySchema, deps.config.maxBodyBytes);
    checkProjectId(principal, body.projectId);
    return json(200, await releaseSession(principal, event.pathParameters?.id ?? "", deps));
  });
}
