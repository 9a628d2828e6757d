/**
 * Runtime configuration of the handlers, read from the environment once per container.
 * A missing or malformed variable throws at load time, naming the variable, rather than
 * halfway through a request.
 */
export interface RedisConfig {
  /** `redis://` or `rediss://` URL (a bare `host:port` is normalised to `redis://host:port`). */
  url: string;
  /** Talk to a Redis Cluster (ElastiCache cluster mode) instead of a single primary. */
  cluster: boolean;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
}

export interface RuntimeConfig {
  redis: RedisConfig;
  /** Where the Redis AUTH token lives (Secrets Manager ARN or `file:` reference), if AUTH is on. */
  redisAuthSecretRef?: string;
  /** Token key set: Secrets Manager ARN, or `file:<path>#<field>` for the local stack. */
  tokenKeysSecretRef: string;
  /** API-key hash set: Secrets Manager ARN, or `file:<path>#<field>`. */
  apiKeysSecretRef: string;
  /** Host (and optional port) of the connect endpoint: the ALB's DNS name or a custom domain. */
  connectHost: string;
  /** `wss` when deployed behind TLS; `ws` for the local stack or a dev ALB without a certificate. */
  connectScheme: "ws" | "wss";
  /** The deployment's AWS region, reported on every session. */
  region: string;
  /** Session timeout when the request does not give one, in seconds. */
  defaultTimeoutSeconds: number;
  /** Concurrent live sessions per project when the API key does not set a limit. */
  defaultConcurrency: number;
  /** How long an ended session stays retrievable and listable, in seconds. */
  retentionSeconds: number;
  /** How long a fetched secret is used before it is fetched again, in milliseconds. */
  secretsTtlMs: number;
  /** How long past its TTL a secret is still served while Secrets Manager is failing. */
  secretsMaxStaleMs: number;
  tokenIssuer: string;
  tokenAudience: string;
  /** Largest accepted `userMetadata`, in bytes of JSON. */
  maxUserMetadataBytes: number;
  /** Largest accepted request body, in bytes. */
  maxBodyBytes: number;
  /** How long an `Idempotency-Key` is remembered, in seconds. */
  idempotencyTtlSeconds: number;
  /** Most bytes one session record may store (userMetadata, browserSettings and proxies included). */
  maxRecordBytes: number;
  /** Most sessions (live and ended) a project keeps; past it the oldest ended ones are dropped. */
  maxRetainedSessions: number;
  /** The object store: `s3://<bucket>` deployed, `file:<folder>` locally; unset, the extension routes refuse to start. */
  objectStore?: string;
}

export const SESSION_TIMEOUT_MIN_SECONDS = 60;
export const SESSION_TIMEOUT_MAX_SECONDS = 21600;

type Env = Record<string, string | undefined>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

function required(env: Env, name: string): string {
  const value = env[name]?.trim();
  if (!value) throw new ConfigError(`environment variable ${name} is required but not set`);
  return value;
}

function optional(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = optional(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(
      `environment variable ${name} must be an integer from ${min} to ${max}, got "${raw}"`,
    );
  }
  return value;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = optional(env, name);
  if (raw === undefined) return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(`environment variable ${name} must be true or false, got "${raw}"`);
}

/** Turns `host:port`, `redis://...` or `rediss://...` into a URL, or throws naming the variable. */
export function normaliseRedisUrl(raw: string, name = "REDIS_ENDPOINT"): string {
  const withScheme = /^[a-z]+:\/\//i.test(raw) ? raw : `redis://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ConfigError(`environment variable ${name} must be host:port or a redis:// / rediss:// URL`);
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    throw new ConfigError(
      `environment variable ${name} must use redis:// or rediss://, got ${url.protocol}//`,
    );
  }
  if (!url.hostname) throw new ConfigError(`environment variable ${name} has no host`);
  return withScheme;
}

function objectStoreSetting(env: Env): string | undefined {
  const value = optional(env, "OBJECT_STORE");
  if (value !== undefined && !/^(s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/?|file:.+)$/.test(value)) {
    throw new ConfigError(
      `environment variable OBJECT_STORE must be s3://<bucket> or file:<folder>, got "${value.slice(0, 100)}"`,
    );
  }
  return value;
}

/** Reads the handlers' configuration from `env` (default `process.env`). */
export function loadConfig(env: Env = process.env): RuntimeConfig {
  const redisUrl = normaliseRedisUrl(required(env, "REDIS_ENDPOINT"));
  const connectHost = required(env, "ALB_DNS_NAME");
  if (/[/\s?#]/.test(connectHost)) {
    throw new ConfigError(
      "environment variable ALB_DNS_NAME must be a host name (optionally :port), not a URL",
    );
  }
  const scheme = optional(env, "CONNECT_SCHEME") ?? "wss";
  if (scheme !== "ws" && scheme !== "wss") {
    throw new ConfigError(`environment variable CONNECT_SCHEME must be ws or wss, got "${scheme}"`);
  }
  return {
    redis: {
      url: redisUrl,
      cluster: bool(env, "REDIS_CLUSTER", false),
      connectTimeoutMs: integer(env, "REDIS_CONNECT_TIMEOUT_MS", 500, 50, 10000),
      commandTimeoutMs: integer(env, "REDIS_COMMAND_TIMEOUT_MS", 500, 200, 10000),
    },
    redisAuthSecretRef: optional(env, "REDIS_AUTH_SECRET_ARN"),
    tokenKeysSecretRef: required(env, "JWE_SECRET_ARN"),
    apiKeysSecretRef: required(env, "API_KEYS_SECRET_ARN"),
    connectHost,
    connectScheme: scheme,
    region: optional(env, "WALLCRAWLER_REGION") ?? optional(env, "AWS_REGION") ?? "local",
    defaultTimeoutSeconds: integer(
      env,
      "DEFAULT_SESSION_TIMEOUT_SECONDS",
      300,
      SESSION_TIMEOUT_MIN_SECONDS,
      SESSION_TIMEOUT_MAX_SECONDS,
    ),
    defaultConcurrency: integer(env, "DEFAULT_CONCURRENCY", 25, 1, 100000),
    retentionSeconds: integer(env, "SESSION_RETENTION_SECONDS", 7 * 86400, 60, 90 * 86400),
    secretsTtlMs: integer(env, "SECRETS_CACHE_TTL_SECONDS", 300, 1, 86400) * 1000,
    secretsMaxStaleMs: integer(env, "SECRETS_MAX_STALE_SECONDS", 3600, 0, 7 * 86400) * 1000,
    tokenIssuer: optional(env, "TOKEN_ISSUER") ?? "wallcrawler-api",
    tokenAudience: optional(env, "TOKEN_AUDIENCE") ?? "wallcrawler-proxy",
    maxUserMetadataBytes: integer(env, "MAX_USER_METADATA_BYTES", 8192, 256, 65536),
    maxBodyBytes: integer(env, "MAX_BODY_BYTES", 65536, 1024, 1048576),
    idempotencyTtlSeconds: integer(env, "IDEMPOTENCY_TTL_SECONDS", 86400, 60, 7 * 86400),
    maxRecordBytes: integer(env, "MAX_SESSION_RECORD_BYTES", 16384, 4096, 262144),
    maxRetainedSessions: integer(env, "MAX_RETAINED_SESSIONS", 5000, 100, 1000000),
    objectStore: objectStoreSetting(env),
  };
}
