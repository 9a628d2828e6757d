/**
 * What both suites that run the serialized create-session handler start from: the program's
 * generated code, a Redis that demands AUTH (as ElastiCache does), and the function's secrets
 * file and environment, as the stack would set them.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { Redis } from "ioredis";
import type { ApiKeyEntry } from "../../lib/apikeys";
import type { TokenKeySet } from "../../lib/tokens";
import { startOwnRedis } from "../support/redis";
import { recorded, T } from "./mocks";
import { loadProgram } from "./program";

/** The `__index.js` the program uploads for create-session. */
export async function createSessionCode(): Promise<string> {
  await loadProgram();
  const fn = recorded.find((r) => r.type === T.lambda && r.name === "api-fn-create-session");
  expect(fn, "the program has a create-session function").to.not.equal(undefined);
  return (await (
    await fn!.inputs.code.assets
  )["__index.js"].text) as string;
}

/** A Redis of the test's own that requires `authToken`, and an admin client already past AUTH. */
export async function redisWithAuth(authToken: string): Promise<{ url: string; admin: Redis }> {
  const redis = await startOwnRedis();
  const admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await admin.connect();
  await admin.config("SET", "requirepass", authToken);
  await admin.auth(authToken);
  return { url: redis.url, admin };
}

/**
 * Writes `dir/secrets.json` (one API key, its project's limit, the token keys, the Redis AUTH
 * token) and returns the environment a function reads them by.
 */
export function functionEnv(
  dir: string,
  options: {
    redisUrl: string;
    entry: ApiKeyEntry;
    project: { id: string; concurrency: number };
    tokenKeys: TokenKeySet;
    authToken: string;
  },
): Record<string, string> {
  const secretsFile = join(dir, "secrets.json");
  writeFileSync(
    secretsFile,
    JSON.stringify({
      apiKeys: { keys: [options.entry], projects: [options.project] },
      tokenKeys: options.tokenKeys,
      redisAuth: options.authToken,
    }),
  );
  return {
    REDIS_ENDPOINT: options.redisUrl,
    REDIS_CLUSTER: "false",
    REDIS_AUTH_SECRET_ARN: `file:${secretsFile}#redisAuth`,
    JWE_SECRET_ARN: `file:${secretsFile}#tokenKeys`,
    API_KEYS_SECRET_ARN: `file:${secretsFile}#apiKeys`,
    ALB_DNS_NAME: "connect.test.example",
    CONNECT_SCHEME: "wss",
    WALLCRAWLER_REGION: "us-west-2",
    POWERTOOLS_LOG_LEVEL: "SILENT",
  };
}
