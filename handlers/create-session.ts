import { BadRequestError, isHttpError } from "../lib/errors";
import {
  apiKeyFrom,
  header,
  json,
  withErrorHandling,
  type HandlerContext,
  type HttpEvent,
  type HttpHandler,
} from "../lib/http";
import { createSessionBodySchema, readJsonBody } from "../lib/schemas";
import { authenticateKey, createSession, type SessionDeps } from "../lib/sessions";

/**
 * What the function keeps for itself after a wait: minting the token, answering, and the
 * invocation's own overhead, so a wait never runs into the function's (or API Gateway's) timeout.
 */
export const WAIT_MARGIN_MS = 3_000;

/**
 * The `wait` preference of RFC 7240 (`Prefer: wait=<seconds>`), or undefined when none is sent.
 * Other preferences are ignored, as the RFC asks; a malformed `wait` is a 400.
 */
export function requestedWait(event: HttpEvent): number | undefined {
  const prefer = header(event, "prefer");
  if (prefer === undefined) return undefined;
  let wait: number | undefined;
  for (const item of prefer.split(",")) {
    const preference = item.split(";")[0].trim();
    if (!/^wait\b/i.test(preference)) continue;
    const match = /^wait\s*=\s*"?(\d{1,6})"?$/i.exec(preference);
    if (!match)
      throw new BadRequestError("Prefer: wait must be a whole number of seconds, e.g. Prefer: wait=10");
    wait = Number(match[1]);
  }
  return wait;
}

/** The wait applied: the request's, at most MAX_QUEUE_WAIT_SECONDS and what the function's time allows. */
export function appliedWait(requested: number, maxSeconds: number, context: HandlerContext): number {
  const remainingMs = context.getRemainingTimeInMillis?.();
  const allowed = remainingMs === undefined ? maxSeconds : Math.floor((remainingMs - WAIT_MARGIN_MS) / 1000);
  return Math.max(0, Math.min(requested, maxSeconds, allowed));
}

/**
 * `POST /v1/sessions`: create a browser session (Browserbase v1 request and response). With
 * `Prefer: wait=<s>`, a create at the project's limit waits for a slot (first come, first
 * served) instead of being refused; `Preference-Applied` says how long it could wait.
 */
export function createSessionHandler(deps: SessionDeps): HttpHandler {
  const bodySchema = createSessionBodySchema();
  return withErrorHandling(deps.logger, async (event, context: HandlerContext) => {
    const principal = await authenticateKey(apiKeyFrom(event), deps);
    const body = readJsonBody(event, bodySchema, deps.config.maxBodyBytes);
    const requested = requestedWait(event);
    const waitSeconds =
      requested === undefined ? undefined : appliedWait(requested, deps.config.maxQueueWaitSeconds, context);
    const applied: Record<string, string> =
      waitSeconds === undefined ? {} : { "preference-applied": `wait=${waitSeconds}` };
    try {
      const result = await createSession(principal, body, header(event, "idempotency-key"), deps, {
        waitSeconds,
        signal: context.signal,
      });
      return json(201, result.session, {
        ...applied,
        ...(result.replayed ? { "idempotent-replayed": "true" } : {}),
      });
    } catch (error) {
      if (isHttpError(error)) Object.assign(error.headers, applied);
      throw error;
    }
  });
}
