import { BadRequestError } from "../lib/errors";
import { json, type HttpHandler } from "../lib/http";
import { authenticateRequest, withRequestLimit, debugSession, type SessionDeps } from "../lib/sessions";

/** `GET /v1/sessions/{id}/debug?expiresIn=`: live-view and debugger URLs for a running session. */
export function sessionDebugHandler(deps: SessionDeps): HttpHandler {
  return withRequestLimit(deps, async (event) => {
    const principal = await authenticateRequest(event, deps);
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
