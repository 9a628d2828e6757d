/**
 * Payload-2.0 events built from plain parts, as API Gateway's HTTP API hands them to a function.
 * The local server turns a Node request into such an event (`toEvent` in ./server); this module
 * builds one without a request, for whatever calls a handler directly: the tests, and the
 * benchmark's fresh-process probes.
 */
import { randomBytes } from "node:crypto";
import type { APIGatewayProxyEventV2 } from "aws-lambda";

/** What an event is made of; `routePath: "$default"` targets the fallback route. */
export interface ApiEventOptions {
  method: string;
  path: string;
  /** The route's path template (`/v1/sessions/{id}`); the request path when left out. */
  routePath?: string;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as is, in place of `body`. */
  rawBody?: string;
  /** Names are lower-cased, as API Gateway does; content-type defaults to JSON. */
  headers?: Record<string, string>;
  query?: Record<string, string>;
  pathParameters?: Record<string, string>;
}

/** A payload-2.0 event as API Gateway sends it (`routePath: "$default"` for the fallback route). */
export function apiEvent(options: ApiEventOptions): APIGatewayProxyEventV2 {
  const headers: Record<string, string> = { "content-type": "application/json" };
  for (const [name, value] of Object.entries(options.headers ?? {})) headers[name.toLowerCase()] = value;
  const body = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const routeKey =
    options.routePath === "$default" ? "$default" : `${options.method} ${options.routePath ?? options.path}`;
  return {
    version: "2.0",
    routeKey,
    rawPath: options.path,
    rawQueryString: new URLSearchParams(options.query ?? {}).toString(),
    headers,
    queryStringParameters: options.query,
    pathParameters: options.pathParameters,
    requestContext: {
      accountId: "123456789012",
      apiId: "test",
      domainName: "api.test.example",
      domainPrefix: "api",
      http: {
        method: options.method,
        path: options.path,
        protocol: "HTTP/1.1",
        sourceIp: "127.0.0.1",
        userAgent: "test",
      },
      requestId: "req-" + randomBytes(4).toString("hex"),
      routeKey,
      stage: "$default",
      time: new Date().toUTCString(),
      timeEpoch: Date.now(),
    },
    body,
    isBase64Encoded: false,
  };
}
