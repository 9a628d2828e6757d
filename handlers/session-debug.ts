import { BadRequestError } from "../lib/errors";
import { apiKeyFrom, json, withErrorHandling, type HttpHandler } from "../lib/http";
import { authenticateKey, debugSession, type SessionDeps } from "../lib/sessions";

/** `GET /v1/sessions/{id}/debug?expiresIn=`: live-view and debugger URLs for a running session. */
export function sessionDebugHandler(deps: SessionDeps): HttpHandler {
  return withErrorHandling(deps.logger, async (event) => {
    const principal = await authenticateKey(apiKeyFrom(event), deps);
    const raw = event.queryStringParameters?.expiresIn;
    let expiresIn: number | undefined;
    if (raw !== undefined && raw !== "") {
      expiresIn = Number(raw);
      if (!/^\d+$/.test(raw) || expiresIn < 1 || expiresIn > 21600) {
        throw new BadRequestError("expiresIn must be a whole number of seconds from 1 to 21600");
      }
    }
    return json(200, await debugSession(principal, event.pathParameters?.id ?? "", expiresIn, deps));
  });
}
