import { parseApiKeySet } from "../lib/apikeys";
import { json, withErrorHandling, type HttpHandler } from "../lib/http";
import type { SessionDeps } from "../lib/sessions";
import { parseTokenKeySet } from "../lib/tokens";

/**
 * `GET /health`, unauthenticated: whether this function can reach Redis and read both secrets.
 * 200 `{"status":"ok","redis":"ok","secrets":"ok"}`, else 503 with the part that is down. It says
 * nothing else (no versions, hosts or error text), so it is safe to leave open to load balancers
 * and uptime checks.
 */
export function healthHandler(deps: SessionDeps): HttpHandler {
  return withErrorHandling(deps.logger, async () => {
    const [redis, secrets] = await Promise.all([
      deps.store.ping().then(
        () => "ok",
        () => "unavailable",
      ),
      Promise.all([
        deps.secrets.getParsed(deps.config.apiKeysSecretRef, parseApiKeySet),
        deps.secrets.getParsed(deps.config.tokenKeysSecretRef, parseTokenKeySet),
      ]).then(
        () => "ok",
        () => "unavailable",
      ),
    ]);
    const ok = redis === "ok" && secrets === "ok";
    return json(ok ? 200 : 503, { status: ok ? "ok" : "unavailable", redis, secrets });
  });
}
