import { z } from "zod";
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
  /** The longest a create may wait for a slot (`Prefer: wait`), before the function's own time caps it. */
  maxQueueWaitSeconds: number;
  /** How long a client has to connect to a session handed to a waiting create. */
  connectDeadlineSeconds: number;
  /** Defaults of the per-project token buckets (perSecond 0 = no limit). */
  rateLimits: {
    create: { perSecond: number; burst: number };
    requests: { perSecond: number; burst: number };
  };
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

function optional(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

/**
 * One environment variable the handlers read: how it reads (a zod schema over the raw text), its
 * default as the README's configuration table shows it, and whether a stack may set it through
 * the `handlerSettings` config (the rest are wired by the infrastructure itself). The README table
 * is checked against this list by a test, and the infrastructure's list of tunable settings is
 * derived from it. Built by a function, not held in a constant: Pulumi serializes the handlers and
 * cannot serialize zod's bound methods.
 */
export interface EnvSetting {
  name: string;
  /** The default as documented: a value, `required`, or `–` (unset). */
  documentedDefault: string;
  tunable: boolean;
  schema: z.ZodType<unknown>;
}

function intSetting(name: string, fallback: number, min: number, max: number, tunable = true): EnvSetting {
  const message = `environment variable ${name} must be an integer from ${min} to ${max}`;
  return {
    name,
    documentedDefault: String(fallback),
    tunable,
    schema: z
      .string()
      .optional()
      .transform((raw, ctx) => {
        if (raw === undefined) return fallback;
        const value = Number(raw);
        if (!/^-?\d+$/.test(raw) || !Number.isInteger(value) || value < min || value > max) {
          ctx.addIssue({ code: "custom", message: `${message}, got "${raw}"` });
          return z.NEVER;
        }
        return value;
      }),
  };
}

function textSetting(
  name: string,
  documentedDefault: string,
  tunable: boolean,
  fallback?: string,
): EnvSetting {
  return {
    name,
    documentedDefault,
    tunable,
    schema: z
      .string()
      .optional()
      .transform((raw, ctx) => {
        if (raw !== undefined) return raw;
        if (documentedDefault === "required") {
          ctx.addIssue({ code: "custom", message: `environment variable ${name} is required but not set` });
          return z.NEVER;
        }
        return fallback;
      }),
  };
}

/** Every variable the handlers read, in the README's order. */
export function envSettings(): EnvSetting[] {
  return [
    textSetting("REDIS_ENDPOINT", "required", false),
    {
      name: "REDIS_CLUSTER",
      documentedDefault: "false",
      tunable: false,
      schema: z
        .string()
        .optional()
        .transform((raw, ctx) => {
          if (raw === undefined || /^(0|false|no|off)$/i.test(raw)) return false;
          if (/^(1|true|yes|on)$/i.test(raw)) return true;
          ctx.addIssue({
            code: "custom",
            message: `environment variable REDIS_CLUSTER must be true or false, got "${raw}"`,
          });
          return z.NEVER;
        }),
    },
    textSetting("REDIS_AUTH_SECRET_ARN", "–", false),
    intSetting("REDIS_CONNECT_TIMEOUT_MS", 500, 50, 10000),
    intSetting("REDIS_COMMAND_TIMEOUT_MS", 500, 200, 10000),
    textSetting("JWE_SECRET_ARN", "required", false),
    textSetting("API_KEYS_SECRET_ARN", "required", false),
    textSetting("ALB_DNS_NAME", "required", false),
    textSetting("CONNECT_SCHEME", "wss", false, "wss"),
    textSetting("WALLCRAWLER_REGION", "AWS_REGION", false),
    intSetting(
      "DEFAULT_SESSION_TIMEOUT_SECONDS",
      300,
      SESSION_TIMEOUT_MIN_SECONDS,
      SESSION_TIMEOUT_MAX_SECONDS,
    ),
    intSetting("DEFAULT_CONCURRENCY", 25, 1, 100000),
    intSetting("SESSION_RETENTION_SECONDS", 7 * 86400, 60, 90 * 86400),
    intSetting("SECRETS_CACHE_TTL_SECONDS", 300, 1, 86400),
    intSetting("SECRETS_MAX_STALE_SECONDS", 3600, 0, 7 * 86400),
    textSetting("TOKEN_ISSUER", "wallcrawler-api", true, "wallcrawler-api"),
    textSetting("TOKEN_AUDIENCE", "wallcrawler-proxy", true, "wallcrawler-proxy"),
    intSetting("MAX_USER_METADATA_BYTES", 8192, 256, 65536),
    intSetting("MAX_BODY_BYTES", 65536, 1024, 1048576),
    intSetting("IDEMPOTENCY_TTL_SECONDS", 86400, 60, 7 * 86400),
    {
      name: "POWERTOOLS_LOG_LEVEL",
      documentedDefault: "INFO",
      tunable: true,
      schema: z
        .string()
        .optional()
        .transform((raw, ctx) => {
          if (raw === undefined) return "INFO";
          if (!/^(TRACE|DEBUG|INFO|WARN|ERROR|CRITICAL|SILENT)$/i.test(raw)) {
            ctx.addIssue({
              code: "custom",
              message: `environment variable POWERTOOLS_LOG_LEVEL must be one of TRACE, DEBUG, INFO, WARN, ERROR, CRITICAL, SILENT, got "${raw}"`,
            });
            return z.NEVER;
          }
          return raw.toUpperCase();
        }),
    },
    {
      name: "OBJECT_STORE",
      documentedDefault: "–",
      tunable: false,
      schema: z
        .string()
        .regex(/^(s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/?|file:.+)$/, {
          error: (issue) =>
            `environment variable OBJECT_STORE must be s3://<bucket> or file:<folder>, got "${String(issue.input).slice(0, 100)}"`,
        })
        .optional(),
    },
    intSetting("MAX_SESSION_RECORD_BYTES", 16384, 4096, 262144),
    intSetting("MAX_RETAINED_SESSIONS", 5000, 100, 1000000),
    intSetting("MAX_QUEUE_WAIT_SECONDS", 20, 0, 25),
    intSetting("CONNECT_DEADLINE_SECONDS", 30, 5, 600),
    intSetting("DEFAULT_CREATE_RATE", 10, 0, 100000),
    intSetting("DEFAULT_CREATE_BURST", 30, 1, 100000),
    intSetting("DEFAULT_REQUEST_RATE", 50, 0, 100000),
    intSetting("DEFAULT_REQUEST_BURST", 100, 1, 100000),
  ];
}

/** Reads every setting of `envSettings()` from `env`; throws a ConfigError naming the first bad variable. */
export function readEnvSettings(env: Env): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const setting of envSettings()) {
    const raw = env[setting.name]?.trim();
    const parsed = setting.schema.safeParse(raw ? raw : undefined);
    if (!parsed.success)
      throw new ConfigError(
        parsed.error.issues[0]?.message ?? `environment variable ${setting.name} is invalid`,
      );
    values[setting.name] = parsed.data;
  }
  return values;
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

/** Reads the handlers' configuration from `env` (default `process.env`). */
export function loadConfig(env: Env = process.env): RuntimeConfig {
  const v = readEnvSettings(env);
  const redisUrl = normaliseRedisUrl(v.REDIS_ENDPOINT as string);
  const connectHost = v.ALB_DNS_NAME as string;
  if (/[/\s?#]/.test(connectHost)) {
    throw new ConfigError(
      "environment variable ALB_DNS_NAME must be a host name (optionally :port), not a URL",
    );
  }
  const scheme = v.CONNECT_SCHEME as string;
  if (scheme !== "ws" && scheme !== "wss") {
    throw new ConfigError(`environment variable CONNECT_SCHEME must be ws or wss, got "${scheme}"`);
  }
  const int = (name: string) => v[name] as number;
  return {
    redis: {
      url: redisUrl,
      cluster: v.REDIS_CLUSTER as boolean,
      connectTimeoutMs: int("REDIS_CONNECT_TIMEOUT_MS"),
      commandTimeoutMs: int("REDIS_COMMAND_TIMEOUT_MS"),
    },
    redisAuthSecretRef: v.REDIS_AUTH_SECRET_ARN as string | undefined,
    tokenKeysSecretRef: v.JWE_SECRET_ARN as string,
    apiKeysSecretRef: v.API_KEYS_SECRET_ARN as string,
    connectHost,
    connectScheme: scheme,
    region: (v.WALLCRAWLER_REGION as string | undefined) ?? optional(env, "AWS_REGION") ?? "local",
    defaultTimeoutSeconds: int("DEFAULT_SESSION_TIMEOUT_SECONDS"),
    defaultConcurrency: int("DEFAULT_CONCURRENCY"),
    retentionSeconds: int("SESSION_RETENTION_SECONDS"),
    secretsTtlMs: int("SECRETS_CACHE_TTL_SECONDS") * 1000,
    secretsMaxStaleMs: int("SECRETS_MAX_STALE_SECONDS") * 1000,
    tokenIssuer: v.TOKEN_ISSUER as string,
    tokenAudience: v.TOKEN_AUDIENCE as string,
    maxUserMetadataBytes: int("MAX_USER_METADATA_BYTES"),
    maxBodyBytes: int("MAX_BODY_BYTES"),
    idempotencyTtlSeconds: int("IDEMPOTENCY_TTL_SECONDS"),
    maxRecordBytes: int("MAX_SESSION_RECORD_BYTES"),
    maxRetainedSessions: int("MAX_RETAINED_SESSIONS"),
    maxQueueWaitSeconds: int("MAX_QUEUE_WAIT_SECONDS"),
    connectDeadlineSeconds: int("CONNECT_DEADLINE_SECONDS"),
    rateLimits: {
      create: { perSecond: int("DEFAULT_CREATE_RATE"), burst: int("DEFAULT_CREATE_BURST") },
      requests: { perSecond: int("DEFAULT_REQUEST_RATE"), burst: int("DEFAULT_REQUEST_BURST") },
    },
    objectStore: v.OBJECT_STORE as string | undefined,
  };
}
