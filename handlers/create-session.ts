import { apiKeyFrom, header, json, withErrorHandling, type HttpHandler } from "../lib/http";
import { createSessionBodySchema, readJsonBody } from "../lib/schemas";
import { authenticateKey, createSession, type SessionDeps } from "../lib/sessions";

/** `POST /v1/sessions`: create a browser session (Browserbase v1 request and response). */
export function createSessionHandler(deps: SessionDeps): HttpHandler {
  const bodySchema = createSessionBodySchema();
  return withErrorHandling(deps.logger, async (event) => {
    const principal = await authenticateKey(apiKeyFrom(event), deps);
    const body = readJsonBody(event, bodySchema, deps.config.maxBodyBytes);
    const result = await createSession(principal, body, header(event, "idempotency-key"), deps);
    return json(201, result.session, result.replayed ? { "idempotent-replayed": "true" } : {});
  });
}
