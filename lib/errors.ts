/**
 * One error hierarchy for the API. Every error that reaches a client is an HttpError; its
 * `expose` flag says whether `message` is safe to show (always true below 500). Anything else
 * that escapes a handler becomes a generic 500 whose detail stays in the log.
 */
export class HttpError extends Error {
  /** Brand checked by `isHttpError`: `instanceof` does not survive Pulumi's function serialization. */
  readonly httpError = true;
  readonly statusCode: number;
  readonly expose: boolean;
  readonly headers: Record<string, string>;
  /** Extra fields of the JSON error body (only for errors whose message is shown). */
  readonly details: Record<string, unknown>;

  constructor(
    statusCode: number,
    message: string,
    options: { headers?: Record<string, string>; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message);
    // Set explicitly: serialized code calls the Error constructor as a function, which ignores `this`.
    this.message = message;
    if (options.cause !== undefined) this.cause = options.cause;
    this.name = "HttpError";
    this.statusCode = statusCode;
    this.expose = statusCode < 500;
    this.headers = options.headers ?? {};
    this.details = options.details ?? {};
  }
}

export class BadRequestError extends HttpError {
  constructor(message: string) {
    super(400, message);
    this.name = "BadRequestError";
  }
}

export class UnauthorizedError extends HttpError {
  constructor(message: string) {
    super(401, message);
    this.name = "UnauthorizedError";
  }
}

export class NotFoundError extends HttpError {
  constructor(message: string) {
    super(404, message);
    this.name = "NotFoundError";
  }
}

export class MethodNotAllowedError extends HttpError {
  constructor(method: string, allowed: readonly string[]) {
    super(405, `method ${method} is not allowed on this path; use ${allowed.join(", ")}`, {
      headers: { allow: allowed.join(", ") },
    });
    this.name = "MethodNotAllowedError";
  }
}

export class ConflictError extends HttpError {
  constructor(message: string) {
    // A retry of a conflict gets the same answer, so tell the Browserbase SDK not to retry.
    super(409, message, { headers: { "x-should-retry": "false" } });
    this.name = "ConflictError";
  }
}

export class PayloadTooLargeError extends HttpError {
  constructor(message: string) {
    super(413, message);
    this.name = "PayloadTooLargeError";
  }
}

/** 415: the body is not in a format the route accepts. */
export class UnsupportedMediaTypeError extends HttpError {
  constructor(message: string) {
    super(415, message);
    this.name = "UnsupportedMediaTypeError";
  }
}

export class TooManyRequestsError extends HttpError {
  readonly retryAfterSeconds: number;

  constructor(
    message: string,
    retryAfterSeconds: number,
    options: { shouldRetry?: boolean; limit?: number; running?: number } = {},
  ) {
    const headers: Record<string, string> = { "retry-after": String(retryAfterSeconds) };
    if (options.shouldRetry !== undefined) headers["x-should-retry"] = String(options.shouldRetry);
    const details: Record<string, unknown> = {};
    if (options.limit !== undefined) {
      // The concurrency limit in the x-ratelimit-* shape clients already read: no slot left until reset.
      headers["x-ratelimit-limit"] = String(options.limit);
      headers["x-ratelimit-remaining"] = "0";
      headers["x-ratelimit-reset"] = String(retryAfterSeconds);
      details.limit = options.limit;
    }
    if (options.running !== undefined) details.running = options.running;
    super(429, message, { headers, details });
    this.name = "TooManyRequestsError";
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** A dependency (Redis, Secrets Manager) failed or timed out: 503, safe to retry. */
export class DependencyError extends HttpError {
  readonly dependency: string;

  constructor(dependency: string, cause: unknown) {
    super(503, `${dependency} is unavailable`, { headers: { "retry-after": "1" }, cause });
    this.name = "DependencyError";
    this.dependency = dependency;
  }
}

/**
 * Runs `operation`, turning any failure that is not already an HttpError into a 503 naming
 * `dependency`: the one mapping every store uses for Redis and object-store failures.
 */
export async function guardDependency<T>(dependency: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (isHttpError(error)) throw error;
    throw new DependencyError(dependency, error);
  }
}

/** True for every HttpError, including ones made by serialized copies of these classes. */
export function isHttpError(error: unknown): error is HttpError {
  return typeof error === "object" && error !== null && (error as { httpError?: unknown }).httpError === true;
}

/** The message clients see for a 5xx: it never carries internals. */
export function publicMessage(error: HttpError): string {
  if (error.expose) return error.message;
  if (error.statusCode === 503) return "The service is temporarily unavailable; retry shortly.";
  return "Internal server error.";
}

const REASON_PHRASES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  410: "Gone",
  413: "Payload Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Entity",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

export function reasonPhrase(statusCode: number): string {
  return REASON_PHRASES[statusCode] ?? (statusCode >= 500 ? "Server Error" : "Error");
}
