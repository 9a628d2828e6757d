import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { fallbackHandler } from "../handlers/fallback";
import { matchRoute, ROUTES, type RouteDefinition } from "../handlers/routes";
import type { HttpEvent, HttpHandler, HttpResult } from "../lib/http";
import { buildOpenApiDocument } from "../lib/openapi";
import type { SessionDeps } from "../lib/sessions";
import { CONTEXT_ARCHIVE_PATH } from "./context-uploads";

/** API Gateway refuses larger payloads before a function sees them. */
const GATEWAY_MAX_BODY_BYTES = 10 * 1024 * 1024;

/** Extra routes the local server answers itself (not API routes). */
export type ExtraRoutes = Record<string, (req: IncomingMessage, res: ServerResponse) => void>;

/**
 * Turns a Node request into an API Gateway HTTP API payload-2.0 event. `requestId` becomes
 * `requestContext.requestId`, where API Gateway puts its own: the handlers answer with it in
 * `x-request-id` and log it, as deployed.
 */
export function toEvent(
  req: IncomingMessage,
  body: Buffer,
  routeKey: string,
  pathParameters: Record<string, string> | undefined,
  requestId: string = randomUUID(),
): HttpEvent {
  const url = new URL(req.url ?? "/", "http://localhost");
  const headers: Record<string, string> = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i].toLowerCase();
    const value = req.rawHeaders[i + 1];
    // API Gateway joins repeated headers with commas.
    headers[name] = name in headers ? `${headers[name]},${value}` : value;
  }
  const query: Record<string, string> = {};
  for (const [key, value] of url.searchParams) query[key] = key in query ? `${query[key]},${value}` : value;
  const now = new Date();
  const textual =
    body.length === 0 || /json|text|x-www-form-urlencoded/i.test(headers["content-type"] ?? "json");
  return {
    version: "2.0",
    routeKey,
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    queryStringParameters: Object.keys(query).length > 0 ? query : undefined,
    pathParameters,
    requestContext: {
      accountId: "local",
      apiId: "local",
      domainName: headers.host ?? "localhost",
      domainPrefix: "local",
      http: {
        method: (req.method ?? "GET").toUpperCase(),
        path: url.pathname,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: req.socket.remoteAddress ?? "127.0.0.1",
        userAgent: headers["user-agent"] ?? "",
      },
      requestId,
      routeKey,
      stage: "$default",
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    body: body.length === 0 ? undefined : textual ? body.toString("utf8") : body.toString("base64"),
    isBase64Encoded: !textual,
  };
}

function send(res: ServerResponse, result: HttpResult): void {
  // A binary body (a zip) comes base64-encoded, as API Gateway expects it from a function.
  const body = result.isBase64Encoded ? Buffer.from(result.body, "base64") : (result.body ?? "");
  // With its length known the answer leaves in one write, as API Gateway sends it (not chunked).
  // (A 204 carries no Content-Length, RFC 9110 8.6.)
  const headers =
    result.statusCode === 204
      ? result.headers
      : { ...result.headers, "content-length": Buffer.byteLength(body) };
  res.writeHead(result.statusCode, headers);
  res.end(body);
}

function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > GATEWAY_MAX_BODY_BYTES) {
        resolve(undefined);
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/**
 * The local stack's HTTP server: the same handler modules the Lambdas run, each built once,
 * fed payload-2.0 events made from real HTTP requests.
 */
export function createLocalServer(
  deps: SessionDeps,
  options: {
    routes?: readonly RouteDefinition[];
    extra?: ExtraRoutes;
    /** `PUT /v1/contexts/<id>/archive` (the local stand-in for a presigned S3 PUT). */
    contextArchive?: (req: IncomingMessage, res: ServerResponse, contextId: string) => void;
  } = {},
): Server {
  const routes = options.routes ?? ROUTES;
  const handlers = new Map<RouteDefinition, HttpHandler>(routes.map((route) => [route, route.factory(deps)]));
  const fallback = fallbackHandler(deps, routes);
  const openApi = JSON.stringify(buildOpenApiDocument(require("../package.json").version));

  /** The access line of an answer the server makes itself (the handlers' adapter logs theirs). */
  const logAnswer = (
    req: IncomingMessage,
    requestId: string,
    status: number,
    started: number,
    errorCode: string,
  ) =>
    deps.logger.info("request", {
      requestId,
      route: "local",
      method: req.method,
      status,
      latencyMs: Math.round((performance.now() - started) * 10) / 10,
      errorCode,
    });

  return createServer(async (req, res) => {
    // One id per request, as API Gateway makes one: in the event, in x-request-id and in the logs.
    const requestId = randomUUID();
    const started = performance.now();
    try {
      const path = new URL(req.url ?? "/", "http://localhost").pathname;
      const extra = options.extra?.[`${req.method} ${path}`];
      if (extra) return extra(req, res);
      const archive = req.method === "PUT" ? CONTEXT_ARCHIVE_PATH.exec(path) : null;
      if (archive && options.contextArchive)
        return options.contextArchive(req, res, decodeURIComponent(archive[1]));
      if (req.method === "GET" && path === "/openapi.json") {
        res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
        res.end(openApi);
        return;
      }
      const body = await readBody(req);
      if (body === undefined) {
        logAnswer(req, requestId, 413, started, "PayloadTooLargeError");
        send(res, {
          statusCode: 413,
          headers: { "content-type": "application/json", "x-request-id": requestId },
          body: JSON.stringify({
            statusCode: 413,
            error: "Payload Too Large",
            message: "request body is over 10 MiB",
          }),
        });
        return;
      }
      const match = matchRoute(routes, req.method ?? "GET", path);
      if (match.kind !== "match") {
        const event = toEvent(req, body, "$default", undefined, requestId);
        send(res, await fallback(event, { awsRequestId: requestId }));
        return;
      }
      const routeKey = `${match.route.method} ${match.route.path}`;
      const event = toEvent(req, body, routeKey, match.pathParameters, requestId);
      // A client that goes away (a waiting create's, say) aborts the request: a wait gives up.
      const gone = new AbortController();
      const abandon = () => {
        if (!res.writableEnded) gone.abort();
      };
      res.once("close", abandon);
      try {
        send(res, await handlers.get(match.route)!(event, { awsRequestId: requestId, signal: gone.signal }));
      } finally {
        res.off("close", abandon);
      }
    } catch (error) {
      deps.logger.error("local server failed to answer", { requestId, reason: (error as Error).message });
      if (!res.headersSent) {
        logAnswer(req, requestId, 500, started, "InternalError");
        send(res, {
          statusCode: 500,
          headers: { "content-type": "application/json", "x-request-id": requestId },
          body: JSON.stringify({
            statusCode: 500,
            error: "Internal Server Error",
            message: "Internal server error.",
          }),
        });
      }
    }
  });
}
