import { expect } from "chai";
import { fallbackHandler } from "../../handlers/fallback";
import { matchRoute, ROUTES, type RouteDefinition } from "../../handlers/routes";
import type { HttpEvent, HttpHandler, HttpResult } from "../../lib/http";
import type { RedisClient } from "../../lib/redis";
import type { SessionDeps } from "../../lib/sessions";
import { apiEvent, ctx } from "../support/fixtures";

/** One request as a client would send it, before API Gateway turns it into an event. */
export interface ApiRequest {
  method: string;
  /** The raw path, as sent (percent-encoding included). */
  path: string;
  /** Sent as `X-BB-API-Key`. */
  key?: string;
  /** JSON-encoded into the body. */
  body?: unknown;
  /** The body text exactly as sent (wins over `body`). */
  rawBody?: string;
  isBase64Encoded?: boolean;
  /** Extra headers; names are lower-cased as API Gateway does. */
  headers?: Record<string, string>;
  query?: Record<string, string>;
}

/** Every route's handler plus the `$default` fallback, dispatched the way API Gateway routes. */
export interface Api {
  event(request: ApiRequest): HttpEvent;
  send(request: ApiRequest): Promise<HttpResult>;
}

/** Builds each route's handler once from `deps` (as a container would) and routes requests to them. */
export function apiFor(deps: SessionDeps, routes: readonly RouteDefinition[] = ROUTES): Api {
  const handlers = new Map<RouteDefinition, HttpHandler>(routes.map((route) => [route, route.factory(deps)]));
  const fallback = fallbackHandler(deps, routes);
  const event = (request: ApiRequest): HttpEvent => {
    const match = matchRoute(routes, request.method, request.path);
    const headers: Record<string, string> = { ...(request.headers ?? {}) };
    if (request.key !== undefined) headers["x-bb-api-key"] = request.key;
    const made = apiEvent({
      method: request.method,
      path: request.path,
      routePath: match.kind === "match" ? match.route.path : undefined,
      body: request.body,
      rawBody: request.rawBody,
      headers,
      query: request.query,
      pathParameters: match.kind === "match" ? match.pathParameters : undefined,
    });
    if (match.kind !== "match") {
      made.routeKey = "$default";
      made.requestContext.routeKey = "$default";
    }
    if (request.isBase64Encoded) made.isBase64Encoded = true;
    return made;
  };
  return {
    event,
    send: async (request) => {
      const match = matchRoute(routes, request.method, request.path);
      const handler = match.kind === "match" ? handlers.get(match.route)! : fallback;
      return handler(event(request), ctx());
    },
  };
}

/** Asserts the body is exactly the API's JSON error shape for the result's status. */
export function expectErrorShape(result: HttpResult): { statusCode: number; error: string; message: string } {
  let body: unknown;
  expect(() => (body = JSON.parse(result.body)), `error body is not JSON: ${result.body}`).not.to.throw();
  expect(body, result.body).to.be.an("object");
  // A 429 at the concurrency limit also names the limit and the live count.
  const expected =
    result.statusCode === 429 && "limit" in (body as object)
      ? ["error", "limit", "message", "running", "statusCode"]
      : ["error", "message", "statusCode"];
  expect(Object.keys(body as object).sort(), result.body).to.deep.equal(expected);
  const typed = body as { statusCode: number; error: string; message: string };
  expect(typed.statusCode, result.body).to.equal(result.statusCode);
  expect(typed.error).to.be.a("string").and.not.equal("");
  expect(typed.message).to.be.a("string").and.not.equal("");
  expect(result.headers["content-type"]).to.match(/^application\/json/);
  return typed;
}

/**
 * Everything Redis holds for one project (every key with its hash tag), in a stable text form.
 * SCAN is fine here: this is a test's check, not a request path.
 */
export async function projectSnapshot(client: RedisClient, projectId: string): Promise<string> {
  const found = new Set<string>();
  let cursor = "0";
  for (let round = 0; round < 10_000; round++) {
    const [next, batch] = await client.scan(cursor, "MATCH", `wc:{${projectId}}:*`, "COUNT", 1000);
    // The request-rate buckets count every authenticated request, refused or not: not state.
    for (const key of batch) if (!key.includes(":rate:")) found.add(key);
    cursor = next;
    if (cursor === "0") break;
  }
  const entries: [string, string, unknown][] = [];
  for (const key of [...found].sort()) {
    const type = await client.type(key);
    let value: unknown;
    if (type === "hash") value = await client.hgetall(key);
    else if (type === "zset") value = await client.zrange(key, "0", "-1", "WITHSCORES");
    else if (type === "string") value = await client.get(key);
    else value = `<${type}>`;
    entries.push([key, type, value]);
  }
  return JSON.stringify(entries);
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
