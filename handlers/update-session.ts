import { json, type HttpHandler } from "../lib/http";
import { readJsonBody, updateSessionBodySchema } from "../lib/schemas";
import {
  authenticateRequest,
  withRequestLimit,
  requestAdmitted,
  checkProjectId,
  releaseSession,
  type SessionDeps,
} from "../lib/sessions";

/** `POST /v1/sessions/{id}` with `{"status": "REQUEST_RELEASE"}`: ends the session (idempotent). */
export function updateSessionHandler(deps: SessionDeps): HttpHandler {
  const bodySchema = updateSessionBodySchema();
  return withRequestLimit(deps, async (event) => {
    const principal = await authenticateRequest(event, deps);
    const body = readJsonBody(event, bodySchema, deps.config.maxBodyBytes);
    checkProjectId(principal, body.projectId);
    await requestAdmitted(event);
    return json(200, await releaseSession(principal, event.pathParameters?.id ?? "", deps));
  });
}
