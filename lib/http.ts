import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import {
  BadRequestError,
  HttpError,
  isHttpError,
  PayloadTooLargeError,
  publicMessage,
  reasonPhrase,
  UnauthorizedError,
} from "./errors";
import type { Logger } from "./logger";

export type HttpEvent = APIGatewayProxyEventV2;
export type HttpResult = APIGatewayProxyStructuredResultV2 & {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
};
/** The part of the Lambda context the handlers use. */
export interface HandlerContext {
  awsRequestId: string;
  /** Lambda's clock: what is left of the invocation (absent locally). */
  getRemainingTimeInMillis?: () => number;
  /** The local stack aborts it when the client goes away (API Gateway cannot tell a function). */
  signal?: AbortSignal;
}
export type HttpHandler = (event: HttpEvent, context: HandlerContext) => Promise<HttpResult>;

const JSON_HEADERS = { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" };

/** A JSON response. */
export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResult {
  return { statusCode, headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(body) };
}

/** The JSON error body `{statusCode, error, message}`; 5xx bodies never carry internals. */
export function errorResult(error: HttpError, requestId?: string): HttpResult {
  const headers: Record<string, string> = { ...error.headers };
  if (requestId) headers["x-request-id"] = requestId;
  return json(
    error.statusCode,
    {
      ...(error.expose ? error.details : {}),
      statusCode: error.statusCode,
      error: reasonPhrase(error.statusCode),
      message: publicMessage(error),
    },
    headers,
  );
}

/** A header by case-insensitive name (API Gateway lower-cases them; the local server does too). */
export function header(event: HttpEvent, name: string): string | undefined {
  const headers = event.headers;
  if (!headers) return undefined;
  const wanted = name.toLowerCase();
  // The lower-cased name is the usual case: a lookup, not a walk over every header (this runs a
  // few times per request).
  const direct = headers[wanted];
  if (direct !== undefined) return direct;
  for (const key in headers) {
    if (key.toLowerCase() === wanted) return headers[key];
  }
  return undefined;
}

/** The API key from `X-BB-API-Key` (Browserbase's header) or `x-api-key`. */
export function apiKeyFrom(event: HttpEvent): string | undefined {
  // An empty X-BB-API-Key (a client that sets it from an unset variable) does not hide x-api-key.
  const value = header(event, "x-bb-api-key")?.trim() || header(event, "x-api-key");
  if (!value?.trim() && header(event, "authorization") !== undefined) {
    throw new UnauthorizedError(
      "API keys go in the X-BB-API-Key header (or x-api-key), not in Authorization: send X-BB-API-Key: <key>.",
    );
  }
  // API Gateway joins repeated headers with commas; a key never contains one.
  return value?.trim();
}

/**
 * Parses a JSON request body. Empty bodies are `{}`; a body over `maxBytes` is 413; malformed
 * JSON or a non-object is 400.
 */
export function parseJsonBody(event: HttpEvent, maxBytes: number): Record<string, unknown> {
  const raw = event.body ?? "";
  // A text body (the usual case) is measured and parsed as it came, not copied into a Buffer and
  // decoded back.
  const decoded = event.isBase64Encoded ? Buffer.from(raw, "base64") : undefined;
  const size = decoded ? decoded.length : Buffer.byteLength(raw, "utf8");
  if (size > maxBytes) {
    throw new PayloadTooLargeError(`request body is ${size} bytes; the limit is ${maxBytes} bytes`);
  }
  // The body is read as JSON whatever the declared content type (curl's -d says form-encoded).
  if (size === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(decoded ? decoded.toString("utf8") : raw);
  } catch (error) {
    throw new BadRequestError(`request body is not valid JSON: ${(error as Error).message.slice(0, 200)}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new BadRequestError("request body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

/**
 * The request id of an invocation: API Gateway's (`$context.requestId`, what its access log
 * records), so a client's `x-request-id` finds both the API's and the function's lines; Lambda's
 * own id only for an event that has none.
 */
export function requestIdOf(event: HttpEvent, context: HandlerContext): string {
  return event.requestContext?.requestId || context.awsRequestId;
}

/** The `errorCode` of an access line: the HttpError's name (`NotFoundError`), or `InternalError`. */
function errorCodeOf(error: unknown): string {
  if (!isHttpError(error)) return "InternalError";
  return error.name && error.name !== "Error" ? error.name : `Http${error.statusCode}`;
}

/**
 * Wraps a handler: every failure becomes the JSON error body (HttpErrors with their own status,
 * anything else a generic 500 whose detail goes only to the log), every answer carries
 * `x-request-id`, and each request writes one access line (`message: "request"`: route, method,
 * status, latency, errorCode and, once authenticated, projectId). Every line logged while the
 * request runs carries its `requestId`. The container's metrics are flushed once per request,
 * after the answer is made, and the request is one trace subsegment when tracing is on.
 */
export function withErrorHandling(logger: Logger, handler: HttpHandler): HttpHandler {
  const run = async (event: HttpEvent, context: HandlerContext, requestId: string): Promise<HttpResult> => {
    const started = performance.now();
    const route = event.routeKey || "$default";
    const telemetry = logger.telemetry;
    const span = telemetry?.tracing.beginInvocation(route);
    let result: HttpResult;
    let failure: unknown;
    try {
      result = await handler(event, context);
      result.headers["x-request-id"] = requestId;
    } catch (error) {
      failure = error;
      result = failureResult(logger, error, requestId, route);
    }
    const keys = logger.requestKeys?.();
    const access: Record<string, unknown> = {
      requestId,
      route,
      method: event.requestContext?.http?.method,
      status: result.statusCode,
      latencyMs: Math.round((performance.now() - started) * 10) / 10,
    };
    if (failure !== undefined) access.errorCode = errorCodeOf(failure);
    // Lambda's own id, for its REPORT line and platform logs, when it is not the request id.
    if (context.awsRequestId && context.awsRequestId !== requestId)
      access.lambdaRequestId = context.awsRequestId;
    logger.info("request", access);
    if (typeof keys?.projectId === "string") telemetry?.tracing.annotate("projectId", keys.projectId);
    span?.end(result.statusCode >= 500 ? failure : undefined);
    telemetry?.metrics.flush();
    return result;
  };
  return (event, context) => {
    const requestId = requestIdOf(event, context);
    return logger.inRequest
      ? logger.inRequest({ requestId }, () => run(event, context, requestId))
      : run(event, context, requestId);
  };
}

/** The answer to a failed request; the cause of a 5xx goes to the log, never into the body. */
function failureResult(logger: Logger, error: unknown, requestId: string, route: string): HttpResult {
  if (isHttpError(error)) {
    if (error.statusCode >= 500) {
      logger.error("request failed: dependency unavailable", {
        requestId,
        route,
        statusCode: error.statusCode,
        cause: describeCause(error.cause),
      });
    }
    return errorResult(error, requestId);
  }
  logger.error("request failed: unexpected error", { requestId, route, cause: describeCause(error) });
  return errorResult(new HttpError(500, "internal error"), requestId);
}

/** Name, code and message of an error for a log line: never its enumerable fields (they may hold request data). */
export function describeCause(error: unknown): Record<string, unknown> | undefined {
  if (error === undefined || error === null) return undefined;
  if (typeof error !== "object") return { message: String(error).slice(0, 500) };
  const e = error as { name?: unknown; code?: unknown; message?: unknown; stack?: unknown };
  return {
    name: typeof e.name === "string" ? e.name : undefined,
    code: typeof e.code === "string" ? e.code : undefined,
    message: typeof e.message === "string" ? e.message.slice(0, 500) : undefined,
    stack: typeof e.stack === "string" ? e.stack.split("\n").slice(0, 6).join("\n") : undefined,
  };
}
