import { unwatchFile, watchFile, type Stats } from "node:fs";
import type { Server } from "node:http";
import { resolve } from "node:path";
import type { AddressInfo } from "node:net";
import { FileObjectStore } from "../lib/objects";
import { createRuntime, type Runtime } from "../lib/runtime";
import type { Logger } from "../lib/logger";
import type { Metrics } from "../lib/metrics";
import { ConnectServer } from "./connect/server";
import { handleContextArchiveUpload, localContextUploadUrl } from "./context-uploads";
import { sweepHandler } from "../handlers/sweep";

/** How often the local stack runs the timeout sweep (deployed: every minute). */
export const LOCAL_SWEEP_INTERVAL_MS = 5000;
/** How often the local stack looks at the secrets file for a change (`npm run keys`). */
export const SECRETS_FILE_POLL_MS = 250;
import { probeRedis } from "./redis-probe";
import { startRedisServer, type RedisServer } from "./redis-server";
import { ensureSecretsFile, mintFirstKey, secretsPath } from "./secrets-file";
import { createLocalServer, type ExtraRoutes } from "./server";

export interface LocalStackOptions {
  /** Folder for secrets.json and Redis data; default WALLCRAWLER_HOME or ./.wallcrawler. */
  home?: string;
  /** HTTP port; 0 picks a free one. Default PORT or 3000. */
  port?: number;
  /** Use this Redis instead of starting one. Default REDIS_URL. */
  redisUrl?: string;
  /** Extra environment for the handlers' config (e.g. DEFAULT_CONCURRENCY). */
  env?: Record<string, string>;
  logger?: Logger;
  /** Default: EMF lines on stdout, as deployed (POWERTOOLS_METRICS_DISABLED=true turns them off). */
  metrics?: Metrics;
  extra?: ExtraRoutes;
  /**
   * Port of the local connect server (the Proxy stand-in); 0 picks a free one. Default: the port
   * of ALB_DNS_NAME (default 127.0.0.1:9222). Sessions' connectUrls name the port it got.
   */
  connectPort?: number;
  /** Start the connect server (default true). Without it, connectUrls point at nothing. */
  connect?: boolean;
  /** Browser binary for the connect server; default CHROMIUM_PATH or /usr/bin/chromium. */
  chromiumPath?: string;
}

/** Host and port to listen on for a connect host such as `127.0.0.1:9222` or `[::1]:9222`. */
export function parseConnectHost(connectHost: string, scheme: string): { host: string; port: number } {
  const url = new URL(`${scheme === "wss" ? "https" : "http"}://${connectHost}`);
  const port = url.port ? Number(url.port) : scheme === "wss" ? 443 : 80;
  return { host: url.hostname.replace(/^\[(.*)\]$/, "$1"), port };
}

function hostForUrl(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

export interface LocalStack {
  url: string;
  port: number;
  home: string;
  secretsFile: string;
  redisUrl: string;
  /** The API key made on first run (shown once), if this start made the secrets file. */
  firstApiKey?: string;
  runtime: Runtime;
  server: Server;
  redis?: RedisServer;
  /** The local connect server (Proxy and browser stand-in), unless started with `connect: false`. */
  connect?: ConnectServer;
  /** Stops the API, every session's browser, the connect server and the Redis it started. */
  stop(): Promise<void>;
}

/**
 * Starts the local stack: secrets file (created on first run), Redis (REDIS_URL, or a
 * redis-server child on a free port), the connect server on the connect host (a stand-in for the
 * Proxy that runs one headless Chromium per connected session), and the HTTP server running the
 * Lambda handlers.
 */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const home = resolve(options.home ?? process.env.WALLCRAWLER_HOME ?? ".wallcrawler");
  const secretsFile = secretsPath(home);
  ensureSecretsFile(secretsFile);

  const redisUrl =
    options.redisUrl ??
    (process.env.REDIS_URL ? await probeRedis(process.env.REDIS_URL, "REDIS_URL") : undefined);
  const redis = redisUrl
    ? undefined
    : await startRedisServer({
        dir: resolve(home, "redis"),
        onUnexpectedExit: (how) =>
          (options.logger ?? console).error(
            `the local redis-server exited unexpectedly (${how}): the API answers 503 until it is back. ` +
              "Stop npm start (Ctrl-C) and run it again.",
          ),
      });
  const connectScheme = options.env?.CONNECT_SCHEME ?? process.env.CONNECT_SCHEME ?? "ws";
  let connectHost = options.env?.ALB_DNS_NAME ?? process.env.ALB_DNS_NAME ?? "127.0.0.1:9222";
  let connect: ConnectServer | undefined;
  const cleanup = async () => {
    await connect?.close();
    await redis?.stop();
  };
  if (options.connect !== false) {
    connect = new ConnectServer({ chromiumPath: options.chromiumPath });
    try {
      const target = parseConnectHost(connectHost, connectScheme);
      const address = await connect.listen(options.connectPort ?? target.port, target.host);
      connectHost = `${hostForUrl(target.host)}:${address.port}`;
    } catch (error) {
      connect = undefined;
      await cleanup();
      if ((error as NodeJS.ErrnoException).code === "EADDRINUSE") {
        throw new Error(
          `the connect host ${connectHost} is in use: stop what holds it or set ALB_DNS_NAME to another ` +
            "host:port, e.g. ALB_DNS_NAME=127.0.0.1:9223 npm start",
          { cause: error },
        );
      }
      throw error;
    }
  }
  const env: Record<string, string | undefined> = {
    ...process.env,
    REDIS_ENDPOINT: redisUrl ?? redis!.url,
    JWE_SECRET_ARN: `file:${secretsFile}#tokenKeys`,
    API_KEYS_SECRET_ARN: `file:${secretsFile}#apiKeys`,
    CONNECT_SCHEME: connectScheme,
    // Stagehand's reconnect accepts only Browserbase's region names, so the local stack reports
    // one of them unless told otherwise.
    WALLCRAWLER_REGION: process.env.WALLCRAWLER_REGION ?? process.env.AWS_REGION ?? "us-west-2",
    // Keys added with `npm run keys` take effect within a second: the file is watched (below) and
    // the cache forgets it when it changes. A 1 s TTL did that by refetching twice a second, and
    // every request that came during a refetch waited for it (the open-loop p99 in `npm run bench`).
    SECRETS_CACHE_TTL_SECONDS: "300",
    // Extensions (and later other uploads) as files, where S3 holds them deployed.
    OBJECT_STORE: process.env.OBJECT_STORE ?? `file:${resolve(home, "objects")}`,
    ...options.env,
    ALB_DNS_NAME: connectHost,
  };
  let runtime: Runtime | undefined;
  try {
    runtime = createRuntime({ env, logger: options.logger, metrics: options.metrics });
    // Archives of deleted extensions are kept a day (sessions may still use them), then removed.
    if (runtime.objects instanceof FileObjectStore) runtime.objects.sweepRetired();
    if (connect) {
      await connect.start(runtime);
      // The debug route lists a local session's pages from its browser.
      runtime.pages = connect.pages;
    }
  } catch (error) {
    await cleanup();
    await runtime?.close();
    throw error;
  }
  const live = runtime;
  const port = options.port ?? Number(process.env.PORT ?? 3000);
  let boundPort = port;
  // Context uploads go to this server (the stand-in for presigned S3 PUTs), whatever port it got.
  runtime.contextUploadUrl = localContextUploadUrl(runtime, () => `http://127.0.0.1:${boundPort}`);
  const server = createLocalServer(runtime, {
    extra: options.extra,
    contextArchive: (req, res, contextId) => void handleContextArchiveUpload(live, req, res, contextId),
  });
  try {
    await new Promise<void>((resolveListen, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolveListen());
    });
  } catch (error) {
    await cleanup();
    await runtime.close();
    throw error;
  }
  const actualPort = (server.address() as AddressInfo).port;
  boundPort = actualPort;
  // The deployed stack's scheduled sweep, more often: timed-out sessions end and count within seconds.
  const sweep = sweepHandler(runtime);
  let sweeping: Promise<unknown> = Promise.resolve();
  const sweeper = setInterval(() => {
    sweeping = sweep().catch(() => undefined); // each failure is already logged per project
  }, LOCAL_SWEEP_INTERVAL_MS);
  sweeper.unref();
  // A rename over the file (how `npm run keys` writes it) changes its inode; an edit, its mtime.
  const onSecretsFile = (current: Stats, previous: Stats) => {
    if (current.mtimeMs === previous.mtimeMs && current.ino === previous.ino) return;
    runtime.secrets.invalidate(runtime.config.apiKeysSecretRef);
    runtime.secrets.invalidate(runtime.config.tokenKeysSecretRef);
  };
  watchFile(secretsFile, { interval: SECRETS_FILE_POLL_MS, persistent: false }, onSecretsFile);
  // Only now that the stack is up: a start that failed before this point has shown no key, so it mints none.
  const first = mintFirstKey(secretsFile);
  if (first) runtime.secrets.invalidate(runtime.config.apiKeysSecretRef);
  return {
    url: `http://127.0.0.1:${actualPort}`,
    port: actualPort,
    home,
    secretsFile,
    redisUrl: env.REDIS_ENDPOINT!,
    firstApiKey: first?.apiKey,
    runtime,
    server,
    redis,
    connect,
    stop: async () => {
      clearInterval(sweeper);
      unwatchFile(secretsFile, onSecretsFile);
      await sweeping;
      await new Promise<void>((done) => server.close(() => done()));
      server.closeAllConnections?.();
      await connect?.close();
      await runtime.close();
      await redis?.stop();
    },
  };
}
