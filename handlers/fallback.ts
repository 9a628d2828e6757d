import { MethodNotAllowedError, NotFoundError } from "../lib/errors";
import { withErrorHandling, type HttpHandler } from "../lib/http";
import type { Logger } from "../lib/logger";
import { matchRoute, type RouteDefinition } from "./routes";

/**
 * The `$default` route: any method and path no other route took. Answers a JSON 405 with
 * `Allow` for a known path, else a JSON 404 (API Gateway's own 404 is not in the API's format).
 */
export function fallbackHandler(deps: { logger: Logger }, routes: readonly RouteDefinition[]): HttpHandler {
  return withErrorHandling(deps.logger, async (event) => {
    const method = event.requestContext.http.method;
    const path = event.rawPath;
    const match = matchRoute(routes, method, path);
    if (match.kind === "method-not-allowed") throw new MethodNotAllowedError(method, match.allowed);
    throw new NotFoundError(
      `no route for ${method} ${path.slice(0, 200)}; the routes are listed in the API reference ` +
        "(docs/openapi.json; the local stack serves it at /openapi.json)",
    );
  });
}
