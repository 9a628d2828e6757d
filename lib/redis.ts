import { Cluster, Redis, type RedisOptions } from "ioredis";
import type { RedisConfig } from "./config";
import type { Metrics } from "./metrics";
import type { TraceSpan, Tracing } from "./tracing";

export type RedisClient = Redis | Cluster;

export interface RedisConnectOptions extends RedisConfig {
  /** AUTH token (ElastiCache) when the URL carries none. */
  password?: string;
}

/**
 * Makes the one Redis client of a container. Timeouts are short and retries few, so a dead or
 * slow Redis fails a request in well under a second (a 503), never holds it until the Lambda
 * times out; the client keeps reconnecting in the background, so service resumes by itself.
 */
export function createRedisClient(options: RedisConnectOptions): RedisClient {
  const url = new URL(options.url);
  const common: RedisOptions = {
    connectTimeout: options.connectTimeoutMs,
    commandTimeout: options.commandTimeoutMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    // A command whose connection dropped before its reply has already been answered 503 (by the
    // command timeout): sending it again after the reconnect would make a create the client was
    // told failed happen after all, holding a slot nobody knows about.
    autoResendUnfulfilledCommands: false,
    // Reconnect quickly after an outage; capped so a restart is noticed within about half a second.
    retryStrategy: (attempt) => Math.min(50 * attempt, 500),
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : options.password,
    tls: url.protocol === "rediss:" ? {} : undefined,
    // Lambda freezes between invocations: no client-side keepalive chatter is needed.
    enableAutoPipelining: false,
    // No CLIENT SETINFO on connect: Redis before 7.2 (ElastiCache's Redis OSS 7.1 among them)
    // refuses it, and each refusal counted twice in RedisErrors for every new connection (each
    // cold start, reconnect and waiter's connection) while costing the set-up a round trip.
    disableClientInfo: true,
  };
  const host = url.hostname;
  const port = url.port ? Number(url.port) : 6379;
  if (options.cluster) {
    return new Cluster([{ host, port }], {
      // ElastiCache's TLS certificates name the configuration endpoint, not the node IPs.
      dnsLookup: (address, callback) => callback(null, address),
      redisOptions: common,
      clusterRetryStrategy: (attempt) => Math.min(50 * attempt, 500),
      slotsRefreshTimeout: options.connectTimeoutMs,
      enableOfflineQueue: true,
      maxRedirections: 4,
    });
  }
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0;
  return new Redis({ ...common, host, port, db: Number.isInteger(db) ? db : 0 });
}

/**
 * Resolves with the client once its connection is ready, waiting at most `timeoutMs`; rejects
 * after that. The store sends commands only on a ready connection: a command queued while Redis is
 * down would time out (a 503 to the client) yet still run when the connection comes back.
 * Polled rather than listened for, so no listener piles up on the client during a long outage
 * and no module-level state is needed (this code is serialized into the Lambda package).
 */
export async function whenReady(client: RedisClient, timeoutMs: number): Promise<RedisClient> {
  const deadline = Date.now() + timeoutMs;
  while (client.status !== "ready") {
    if (Date.now() >= deadline) {
      throw new Error(`Redis connection not ready within ${timeoutMs} ms (${client.status})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return client;
}

/** What `instrumentRedis` reports to. */
export interface RedisObserver {
  metrics: Metrics;
  tracing: Tracing;
}

interface TimedCall {
  started: number;
  span: TraceSpan;
  pending: number;
  failure?: unknown;
}

/**
 * Times every command the client sends, at the one place ioredis sends them (`sendCommand`), so
 * the stores need no change: one `RedisLatency` sample (ms) per command, or per pipeline or
 * MULTI (its commands go out in one write), `RedisErrors` for each that fails, and a Redis
 * subsegment of the current trace. Cost: a timestamp and a promise callback per command.
 */
export function instrumentRedis(client: RedisClient, observer: RedisObserver): void {
  type Send = (
    command: { name: string; promise: Promise<unknown> },
    stream?: unknown,
    ...rest: unknown[]
  ) => unknown;
  const target = client as unknown as { sendCommand: Send };
  const send = target.sendCommand.bind(client) as Send;
  // A command comes through again when it is re-sent from the offline queue: time it once.
  const seen = new WeakSet<object>();
  // A pipeline's commands share the `stream` object of its exec.
  const batches = new WeakMap<object, TimedCall>();
  const settle = (call: TimedCall, error?: unknown) => {
    if (error !== undefined && call.failure === undefined) call.failure = error;
    if (--call.pending > 0) return;
    observer.metrics.duration("RedisLatency", performance.now() - call.started);
    if (call.failure !== undefined) observer.metrics.count("RedisErrors");
    call.span.end(call.failure);
  };
  target.sendCommand = (command, stream, ...rest) => {
    if (command && typeof command === "object" && !seen.has(command)) {
      seen.add(command);
      const batched = typeof stream === "object" && stream !== null;
      let call = batched ? batches.get(stream) : undefined;
      if (!call) {
        call = {
          started: performance.now(),
          span: observer.tracing.span("Redis", { command: batched ? "pipeline" : command.name }),
          pending: 0,
        };
        if (batched) batches.set(stream, call);
      }
      call.pending++;
      const timed = call;
      command.promise.then(
        () => settle(timed),
        (error: unknown) => settle(timed, error ?? new Error("redis command failed")),
      );
    }
    return send(command, stream, ...rest);
  };
}
