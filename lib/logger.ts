import { AsyncLocalStorage } from "node:async_hooks";
import { Logger as PowertoolsLogger } from "@aws-lambda-powertools/logger";
import type { Metrics } from "./metrics";
import type { Tracing } from "./tracing";

/** The narrow logging interface the handlers depend on. Never pass a key, token or secret value. */
export interface Logger {
  debug(message: string, extra?: Record<string, unknown>): void;
  info(message: string, extra?: Record<string, unknown>): void;
  warn(message: string, extra?: Record<string, unknown>): void;
  error(message: string, extra?: Record<string, unknown>): void;
  /**
   * Adds keys to this and every later line of the current request, and to its access line (the
   * caller's `projectId` once the key is known). Outside a request it does nothing.
   */
  appendKeys?(keys: Record<string, unknown>): void;
  /** Runs `fn` as one request: every line logged inside it, however deep, carries `keys` first. */
  inRequest?<T>(keys: Record<string, unknown>, fn: () => Promise<T>): Promise<T>;
  /** The keys of the request this call runs in (what `appendKeys` added included). */
  requestKeys?(): Readonly<Record<string, unknown>> | undefined;
  /**
   * The container's metrics and tracing, attached by the runtime: the HTTP adapter every handler
   * already passes its logger to flushes and traces through them.
   */
  telemetry?: Telemetry;
}

/** What the HTTP adapter flushes and traces through; one per container. */
export interface Telemetry {
  metrics: Metrics;
  tracing: Tracing;
}

interface RequestScope {
  keys: Record<string, unknown>;
}

/**
 * The request scope of one logger. Each request's keys live in its own async context (not in
 * keys set on a shared logger), so requests that run at once on one logger (the local stack) never
 * mix their ids. Built per logger, never at module scope: module state of lib/ is rebuilt on every
 * invocation in the serialized Lambda code.
 */
function requestScopes() {
  const storage = new AsyncLocalStorage<RequestScope>();
  return {
    /** `extra` with the current request's keys in front (a request key never overrides a line's own). */
    merge(extra?: Record<string, unknown>): Record<string, unknown> | undefined {
      const scope = storage.getStore();
      if (!scope) return extra;
      return extra ? { ...scope.keys, ...extra } : scope.keys;
    },
    appendKeys(keys: Record<string, unknown>): void {
      const scope = storage.getStore();
      if (scope) scope.keys = { ...scope.keys, ...keys };
    },
    inRequest<T>(keys: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
      return storage.run({ keys: { ...keys } }, fn);
    },
    requestKeys(): Readonly<Record<string, unknown>> | undefined {
      return storage.getStore()?.keys;
    },
  };
}

/**
 * Structured JSON logs through Powertools for AWS Lambda, with per-request keys (`requestId`,
 * `projectId`) on every line of a request. Powertools reads the level from `POWERTOOLS_LOG_LEVEL`,
 * else `LOG_LEVEL`, default INFO; where Lambda's own log-level control is set, it follows that.
 */
export function createLogger(serviceName = "wallcrawler-api"): Logger {
  const logger = new PowertoolsLogger({ serviceName });
  const scopes = requestScopes();
  const at =
    (level: "debug" | "info" | "warn" | "error") => (message: string, extra?: Record<string, unknown>) => {
      const merged = scopes.merge(extra);
      if (merged) logger[level](message, merged);
      else logger[level](message);
    };
  return scopedLogger(at, scopes);
}

/** A Logger from a line writer per level and the request scope its lines take their keys from. */
function scopedLogger(
  at: (
    level: "debug" | "info" | "warn" | "error",
  ) => (message: string, extra?: Record<string, unknown>) => void,
  scopes: ReturnType<typeof requestScopes>,
): Logger {
  return {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    appendKeys: scopes.appendKeys,
    inRequest: scopes.inRequest,
    requestKeys: scopes.requestKeys,
  };
}

export interface MemoryLogLine {
  level: string;
  message: string;
  extra?: Record<string, unknown>;
}

/** A logger that keeps its lines in memory (tests read them back), with the same request scope. */
export function createMemoryLogger(): Logger & { lines: MemoryLogLine[] } {
  const lines: MemoryLogLine[] = [];
  const scopes = requestScopes();
  const at = (level: string) => (message: string, extra?: Record<string, unknown>) => {
    lines.push({ level, message, extra: scopes.merge(extra) });
  };
  return { lines, ...scopedLogger(at, scopes) };
}
