import { loadConfig, type RuntimeConfig } from "./config";
import { createLogger, type Logger } from "./logger";
import { createMetrics, type Metrics } from "./metrics";
import { createRedisClient, instrumentRedis, whenReady, type RedisClient } from "./redis";
import { FileSecretSource, SecretCache, SecretsManagerSource } from "./secrets";
import { newSessionId, type SessionDeps } from "./sessions";
import { defineSessionScripts, SessionStore } from "./store";
import { describeCause } from "./http";
import { defineExtensionScripts, ExtensionStore } from "./extensions";
import { objectStoreFrom } from "./objects";
import { ContextStore, defineContextScripts } from "./contexts";
import { defineSessionFileScripts, SessionFileStore } from "./session-files";
import { createTracing, type Tracing } from "./tracing";

export interface RuntimeOptions {
  env?: Record<string, string | undefined>;
  logger?: Logger;
  config?: RuntimeConfig;
  /** Default: EMF lines on stdout (see `createMetrics`). */
  metrics?: Metrics;
  /** Default: Powertools Tracer where tracing is active, else none (see `createTracing`). */
  tracing?: Tracing;
}

/** What a running container holds: the session deps plus a way to close its connections. */
export interface Runtime extends SessionDeps {
  /** The container's metrics: flushed once per request by the HTTP adapter. */
  metrics: Metrics;
  tracing: Tracing;
  redis(): Promise<RedisClient>;
  close(): Promise<void>;
}

/**
 * Builds everything a container needs once: config (throws on a bad env at load time), logger,
 * metrics and tracing, secret cache (fetches start now), and the Redis client (made on first use,
 * after the AUTH token is known). Call it from `callbackFactory` or at the local server's start,
 * never per request. The metrics and tracing are attached to the logger, which every handler
 * hands to the HTTP adapter: that is how it flushes them and opens each request's trace.
 */
export function createRuntime(options: RuntimeOptions = {}): Runtime {
  const env = options.env ?? process.env;
  const config = options.config ?? loadConfig(env);
  const logger = options.logger ?? createLogger();
  const metrics = options.metrics ?? createMetrics({ env });
  const tracing =
    options.tracing ??
    createTracing(env, {
      onUnavailable: (error) =>
        logger.warn("tracing is on but the tracer did not load: no traces", { cause: describeCause(error) }),
    });
  logger.telemetry = { metrics, tracing };
  const secrets = new SecretCache(new SecretsManagerSource(), new FileSecretSource(), {
    ttlMs: config.secretsTtlMs,
    maxStaleMs: config.secretsMaxStaleMs,
    metrics,
    tracing,
    onStale: (ref, error) =>
      logger.warn("serving a cached secret: refresh failed", { secret: ref, cause: describeCause(error) }),
    onInvalid: (ref, error) =>
      logger.error("a secret is malformed: fix its value (requests answer 503 until then)", {
        secret: ref,
        // JSON.parse's message quotes the text it read: never log a piece of a secret.
        cause:
          error instanceof SyntaxError
            ? { name: "SyntaxError", message: "not valid JSON" }
            : describeCause(error),
      }),
  });
  secrets.warm(config.apiKeysSecretRef);
  secrets.warm(config.tokenKeysSecretRef);
  if (config.redisAuthSecretRef) secrets.warm(config.redisAuthSecretRef);

  let pending: Promise<RedisClient> | undefined;
  let client: RedisClient | undefined;
  const redis = (): Promise<RedisClient> => {
    pending ??= (async () => {
      const password = config.redisAuthSecretRef ? await secrets.get(config.redisAuthSecretRef) : undefined;
      const made = createRedisClient({ ...config.redis, password });
      instrumentRedis(made, { metrics, tracing });
      defineSessionScripts(made);
      defineExtensionScripts(made);
      defineContextScripts(made);
      defineSessionFileScripts(made);
      let down = false;
      made.on("error", (error: unknown) => {
        // One line per outage, not one per reconnect attempt.
        if (!down) logger.warn("redis connection error", { cause: describeCause(error) });
        down = true;
      });
      made.on("ready", () => {
        if (down) logger.info("redis connection restored");
        down = false;
      });
      client = made;
      return made;
    })();
    pending.catch(() => {
      pending = undefined;
    });
    return pending;
  };

  // Commands go out only on a ready connection, never into ioredis's offline queue.
  const readyRedis = async () => whenReady(await redis(), config.redis.connectTimeoutMs);
  const objects = config.objectStore ? objectStoreFrom(config.objectStore) : undefined;
  const store = new SessionStore(readyRedis, {
    commandTimeoutMs: config.redis.commandTimeoutMs,
    compensationClient: redis,
  });
  return {
    config,
    logger,
    metrics,
    tracing,
    secrets,
    store,
    extensions: new ExtensionStore(readyRedis, { commandTimeoutMs: config.redis.commandTimeoutMs }),
    contexts: new ContextStore(readyRedis, { commandTimeoutMs: config.redis.commandTimeoutMs }),
    objects,
    sessionFiles: objects ? new SessionFileStore(readyRedis, objects) : undefined,
    now: Date.now,
    newId: newSessionId,
    redis,
    close: async () => {
      store.closeIdleConnections();
      if (client) client.disconnect();
    },
  };
}
