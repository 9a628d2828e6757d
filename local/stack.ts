import type { Server } from "node:http";
import { resolve } from "node:path";
import type { AddressInfo } from "node:net";
import { createRuntime, type Runtime } from "../lib/runtime";
import type { Logger } from "../lib/logger";
import { startRedisServer, type RedisServer } from "./redis-server";
import { ensureSecretsFile, secretsPath } from "./secrets-file";
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
  extra?: ExtraRoutes;
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
  stop(): Promise<void>;
}

/**
 * Starts the local stack: secrets file (created on first run), Redis (REDIS_URL, or a
 * redis-server child on a free port), and the HTTP server running the Lambda handlers.
 */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const home = resolve(options.home ?? process.env.WALLCRAWLER_HOME ?? ".wallcrawler");
  const secretsFile = secretsPath(home);
  const first = ensureSecretsFile(secretsFile);

  const redisUrl = options.redisUrl ?? process.env.REDIS_URL;
  const redis = redisUrl ? undefined : await startRedisServer({ dir: resolve(home, "redis") });
  const env: Record<string, string | undefined> = {
    ...process.env,
    REDIS_ENDPOINT: redisUrl ?? redis!.url,
    JWE_SECRET_ARN: `file:${secretsFile}#tokenKeys`,
    API_KEYS_SECRET_ARN: `file:${secretsFile}#apiKeys`,
    ALB_DNS_NAME: process.env.ALB_DNS_NAME ?? "127.0.0.1:9222",
    CONNECT_SCHEME: process.env.CONNECT_SCHEME ?? "ws",
    // Keys added with `npm run keys` take effect within a second.
    SECRETS_CACHE_TTL_SECONDS: "1",
    ...options.env,
  };
  const runtime = createRuntime({ env, logger: options.logger });
  const server = createLocalServer(runtime, { extra: options.extra });
  const port = options.port ?? Number(process.env.PORT ?? 3000);
  try {
    await new Promise<void>((resolveListen, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolveListen());
    });
  } catch (error) {
    await runtime.close();
    await redis?.stop();
    throw error;
  }
  const actualPort = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${actualPort}`,
    port: actualPort,
    home,
    secretsFile,
    redisUrl: env.REDIS_ENDPOINT!,
    firstApiKey: first.apiKey,
    runtime,
    server,
    redis,
    stop: async () => {
      await new Promise<void>((done) => server.close(() => done()));
      server.closeAllConnections?.();
      await runtime.close();
      await redis?.stop();
    },
  };
}
