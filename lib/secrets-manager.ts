/**
 * Secrets Manager's GetSecretValue over node:http(s) and SigV4 (lib/sigv4.ts), in place of
 * @aws-sdk/client-secrets-manager: loading that client cost about 110 ms of each cold start, this
 * module under 20 ms. It keeps what the functions relied on from the SDK client: two attempts, a
 * 300 ms connect and a 400 ms request timeout, a retry only for what may pass (throttling and 429,
 * timeouts, dropped connections, 500/502/503/504), and errors named by their AWS error code. It
 * does not correct clock skew as the SDK does: Lambda's clock is kept in sync.
 * node:https rather than fetch: the first fetch loads undici, about 80 ms more.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { credentialsFromEnv, signRequest, type AwsCredentials } from "./sigv4";

/**
 * An error answer of Secrets Manager, or a failed exchange with it. `name` and `code` are the AWS
 * error code (`ResourceNotFoundException`, `AccessDeniedException`, `DecryptionFailure`,
 * `ThrottlingException`, ...), as on the SDK's errors, or `TimeoutError` / a Node.js socket code.
 */
export class SecretsManagerError extends Error {
  readonly code: string;
  /** The HTTP status of an error answer; undefined when none came. */
  readonly statusCode: number | undefined;
  /** Whether another attempt may succeed (the SDK's standard retry decision). */
  readonly retryable: boolean;

  constructor(code: string, message: string, options: { statusCode?: number; cause?: unknown } = {}) {
    super(message);
    // Set explicitly: the serialized Lambda code calls Error as a function, which ignores `this`.
    this.message = message;
    if (options.cause !== undefined) this.cause = options.cause;
    this.name = code;
    this.code = code;
    this.statusCode = options.statusCode;
    this.retryable = isRetryable(code, options.statusCode);
  }
}

// Arrays, not Sets: Pulumi's serialization of the handlers cannot carry a Set.
/** The SDK's throttling codes (@smithy/service-error-classification): retried. */
const THROTTLING_CODES: readonly string[] = [
  "BandwidthLimitExceeded",
  "LimitExceededException",
  "PriorRequestNotComplete",
  "ProvisionedThroughputExceededException",
  "RequestLimitExceeded",
  "RequestThrottled",
  "RequestThrottledException",
  "SlowDown",
  "ThrottledException",
  "Throttling",
  "ThrottlingException",
  "TooManyRequestsException",
];
/** Timeouts and dropped connections: retried, as the SDK does. */
const TRANSIENT_CODES: readonly string[] = [
  "TimeoutError",
  "RequestTimeout",
  "RequestTimeoutException",
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
];
const TRANSIENT_STATUSES: readonly number[] = [429, 500, 502, 503, 504];

function isRetryable(code: string, statusCode: number | undefined): boolean {
  return (
    THROTTLING_CODES.includes(code) ||
    TRANSIENT_CODES.includes(code) ||
    (statusCode !== undefined && TRANSIENT_STATUSES.includes(statusCode))
  );
}

/** What GetSecretValue answers (the fields the functions read). */
export interface SecretValue {
  SecretString?: string;
  /** Base64, as the JSON protocol carries it. */
  SecretBinary?: string;
}

export interface SecretsManagerClientOptions {
  /** `https://secretsmanager.<region>.amazonaws.com`, or a stand-in's URL. */
  endpoint: string;
  region: string;
  credentials: AwsCredentials;
  /** Attempts per call, the first included (default 2). */
  maxAttempts?: number;
  /** How long to wait for a TCP connection (default 300 ms). */
  connectTimeoutMs?: number;
  /** How long one attempt may take in all, connection included (default 400 ms). */
  requestTimeoutMs?: number;
}

/**
 * The Secrets Manager endpoint of an environment: AWS_ENDPOINT_URL_SECRETS_MANAGER, else
 * AWS_ENDPOINT_URL (the SDK's overrides, which the tests point at a stand-in), else the region's.
 */
export function secretsManagerEndpoint(env: Record<string, string | undefined>, region: string): string {
  const override = env.AWS_ENDPOINT_URL_SECRETS_MANAGER || env.AWS_ENDPOINT_URL;
  if (override) return override;
  const domain = region.startsWith("cn-") ? "amazonaws.com.cn" : "amazonaws.com";
  return `https://secretsmanager.${region}.${domain}`;
}

/** One container's Secrets Manager client: one keep-alive connection pool, signed JSON 1.1 calls. */
export class SecretsManagerClient {
  private readonly url: URL;
  private readonly agent: HttpAgent;
  private readonly send: typeof httpRequest;
  private readonly maxAttempts: number;
  private readonly connectTimeoutMs: number;
  private readonly requestTimeoutMs: number;

  constructor(private readonly options: SecretsManagerClientOptions) {
    this.url = new URL(options.endpoint);
    const secure = this.url.protocol === "https:";
    if (!secure && this.url.protocol !== "http:")
      throw new Error(`Secrets Manager endpoint ${options.endpoint} is not an http(s) URL`);
    // Keep-alive: a warm container's refresh reuses the connection (no new TLS handshake).
    this.agent = secure ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
    this.send = secure ? httpsRequest : httpRequest;
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 2);
    this.connectTimeoutMs = options.connectTimeoutMs ?? 300;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 400;
  }

  /**
   * A client for the function's environment: credentials, region (AWS_REGION) and endpoint from
   * `env`. Throws, naming what is missing, when there are no credentials or no region.
   */
  static fromEnv(
    env: Record<string, string | undefined> = process.env,
    options: Partial<SecretsManagerClientOptions> = {},
  ): SecretsManagerClient {
    const region = options.region ?? (env.AWS_REGION || env.AWS_DEFAULT_REGION);
    if (!region) throw new Error("no AWS region: set AWS_REGION (Lambda sets it)");
    return new SecretsManagerClient({
      ...options,
      region,
      endpoint: options.endpoint ?? secretsManagerEndpoint(env, region),
      credentials: options.credentials ?? credentialsFromEnv(env),
    });
  }

  /** GetSecretValue of a secret's ARN or name (its AWSCURRENT version). */
  async getSecretValue(secretId: string): Promise<SecretValue> {
    const body = JSON.stringify({ SecretId: secretId });
    for (let attempt = 1; ; attempt++) {
      try {
        return parseAnswer(await this.call("secretsmanager.GetSecretValue", body));
      } catch (error) {
        // The flag, not instanceof: classes do not keep their identity through Pulumi's serialization.
        if ((error as Partial<SecretsManagerError>).retryable !== true || attempt >= this.maxAttempts)
          throw error;
        // Full jitter on the SDK's 50 ms base: clients retrying together do not retry in step.
        await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 50)));
      }
    }
  }

  /** Drops the kept connections (for tests and a clean shutdown). */
  destroy(): void {
    this.agent.destroy();
  }

  /** One signed POST; the answer's body on a 200, else a SecretsManagerError. */
  private call(target: string, body: string): Promise<string> {
    const path = this.url.pathname || "/";
    const headers = signRequest({
      method: "POST",
      path,
      headers: {
        host: this.url.host,
        "content-type": "application/x-amz-json-1.1",
        "x-amz-target": target,
      },
      body,
      region: this.options.region,
      service: "secretsmanager",
      credentials: this.options.credentials,
    });
    headers["content-length"] = String(Buffer.byteLength(body));

    return new Promise<string>((resolve, reject) => {
      let settled = false;
      let connectTimer: NodeJS.Timeout | undefined;
      const requestTimer = setTimeout(
        () => finish(new SecretsManagerError("TimeoutError", `no answer within ${this.requestTimeoutMs} ms`)),
        this.requestTimeoutMs,
      );
      const req = this.send(
        {
          protocol: this.url.protocol,
          hostname: this.url.hostname,
          port: this.url.port,
          path,
          method: "POST",
          headers,
          agent: this.agent,
        },
        (res) => {
          readBody(res).then(
            (text) => finish(res.statusCode === 200 ? undefined : errorFromAnswer(res, text), text),
            (error: unknown) => finish(transportError(error)),
          );
        },
      );
      function finish(error: Error | undefined, text?: string): void {
        if (settled) return;
        settled = true;
        clearTimeout(requestTimer);
        clearTimeout(connectTimer);
        if (error) {
          req.destroy();
          reject(error);
        } else resolve(text!);
      }
      req.once("socket", (socket) => {
        // A kept-alive socket is already connected; only a new one gets the connect timeout.
        if (!socket.connecting) return;
        connectTimer = setTimeout(
          () =>
            finish(
              new SecretsManagerError("TimeoutError", `no connection within ${this.connectTimeoutMs} ms`),
            ),
          this.connectTimeoutMs,
        );
        socket.once("connect", () => clearTimeout(connectTimer));
      });
      req.on("error", (error) => finish(transportError(error)));
      req.end(body);
    });
  }
}

/** A 200 answer's JSON. JSON.parse's own message quotes the text, which may hold the secret: not kept. */
function parseAnswer(text: string): SecretValue {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new SecretsManagerError("SerializationException", "the answer is not valid JSON");
  }
  if (typeof value !== "object" || value === null)
    throw new SecretsManagerError("SerializationException", "the answer is not a JSON object");
  return value as SecretValue;
}

function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on("data", (chunk: Buffer) => chunks.push(chunk));
    res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    // A connection dropped mid-answer is an "aborted" error with code ECONNRESET.
    res.on("error", reject);
  });
}

/** A socket error as a SecretsManagerError with the socket's code (ECONNREFUSED, ECONNRESET, ...). */
function transportError(error: unknown): SecretsManagerError {
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  return new SecretsManagerError(typeof code === "string" ? code : "NetworkingError", message, {
    cause: error,
  });
}

/**
 * The AWS error of a JSON 1.1 error answer: its code from `x-amzn-errortype` or the body's
 * `__type`/`code` (`com.amazonaws...#ResourceNotFoundException:http://...` becomes
 * `ResourceNotFoundException`, as the SDK reads it), its message from the body.
 */
function errorFromAnswer(res: IncomingMessage, text: string): SecretsManagerError {
  let parsed: { __type?: unknown; code?: unknown; message?: unknown; Message?: unknown } = {};
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === "object" && value !== null) parsed = value as typeof parsed;
  } catch {
    // Not JSON (a proxy's HTML page): the status alone names the failure.
  }
  const header = res.headers["x-amzn-errortype"];
  const raw = [header, parsed.__type, parsed.code].find(
    (candidate): candidate is string => typeof candidate === "string" && candidate !== "",
  );
  const code = raw ? (raw.split(":")[0].split("#").pop() ?? raw) : `Http${res.statusCode}`;
  const message = [parsed.message, parsed.Message].find((m): m is string => typeof m === "string");
  return new SecretsManagerError(code, message ?? `HTTP ${res.statusCode}`, { statusCode: res.statusCode });
}
