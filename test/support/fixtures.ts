import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { generateApiKey } from "../../lib/apikeys";
import { loadConfig, type RuntimeConfig } from "../../lib/config";
import { createContext } from "../../lib/contexts";
import { createMemoryLogger } from "../../lib/logger";
import { createRuntime, type Runtime } from "../../lib/runtime";
import { rotateTokenKeySet, type TokenKeySet } from "../../lib/tokens";
import { readSecrets, upsertProject, writeSecrets } from "../../local/secrets-file";
import { sharedRedis } from "./redis";

/** A unique project id per test, so tests sharing one Redis never see each other's sessions. */
export function uniqueProject(prefix = "p"): string {
  return `${prefix}-${randomBytes(6).toString("hex")}`;
}

export interface TestWorld {
  runtime: Runtime;
  config: RuntimeConfig;
  logger: ReturnType<typeof createMemoryLogger>;
  secretsFile: string;
  tokenKeys: TokenKeySet;
  /** Mints an API key for `projectId` and adds its hash to the secrets file. */
  addKey(projectId: string, options?: { concurrency?: number; name?: string }): string;
  /** Creates a context of `projectId` the way POST /v1/contexts does; returns its id. */
  addContext(projectId: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * A runtime wired exactly as the local stack wires it (file secrets, real Redis), with an
 * in-memory logger. `env` overrides config variables; `redisUrl` another Redis.
 */
export async function createTestWorld(
  options: { env?: Record<string, string>; redisUrl?: string } = {},
): Promise<TestWorld> {
  const redisUrl = options.redisUrl ?? (await sharedRedis()).url;
  const home = mkdtempSync(join(tmpdir(), "wc-test-"));
  const secretsFile = join(home, "secrets.json");
  const tokenKeys = rotateTokenKeySet(undefined, "test-k1");
  writeSecrets(secretsFile, { apiKeys: { keys: [] }, tokenKeys });
  const env = {
    REDIS_ENDPOINT: redisUrl,
    JWE_SECRET_ARN: `file:${secretsFile}#tokenKeys`,
    API_KEYS_SECRET_ARN: `file:${secretsFile}#apiKeys`,
    ALB_DNS_NAME: "connect.test.example",
    WALLCRAWLER_REGION: "us-west-2",
    // Re-read the file on every request, so keys added by a test are seen at once.
    SECRETS_CACHE_TTL_SECONDS: "1",
    OBJECT_STORE: `file:${join(home, "objects")}`,
    // No request rate limits unless a test sets them: suites create sessions in bursts.
    DEFAULT_CREATE_RATE: "0",
    DEFAULT_REQUEST_RATE: "0",
    ...options.env,
  };
  const config = loadConfig(env);
  config.secretsTtlMs = 0;
  const logger = createMemoryLogger();
  const runtime = createRuntime({ config, logger });
  // What the local stack's upload endpoint would answer with; the tests that upload start a stack.
  runtime.contextUploadUrl = async (projectId, contextId) =>
    `http://upload.test.example/v1/contexts/${contextId}/archive?project=${projectId}`;
  // Let the start-up fetches finish, so none of them races a key a test adds next.
  await runtime.secrets.get(config.apiKeysSecretRef);
  await runtime.secrets.get(config.tokenKeysSecretRef);
  return {
    runtime,
    config,
    logger,
    secretsFile,
    tokenKeys,
    addKey(projectId, keyOptions = {}) {
      const { key, entry } = generateApiKey(projectId, { name: keyOptions.name });
      const secrets = readSecrets(secretsFile);
      secrets.apiKeys.keys.push(entry);
      writeSecrets(secretsFile, secrets);
      // The limit belongs to the project: set it the way `npm run keys -- create --concurrency` does.
      if (keyOptions.concurrency !== undefined)
        upsertProject(secretsFile, projectId, { concurrency: keyOptions.concurrency });
      return key;
    },
    async addContext(projectId) {
      const { record } = await createContext(
        { projectId, principalId: "prn_test", concurrency: 1, defaultTimeout: 300 },
        {},
        {
          contexts: runtime.contexts,
          objects: runtime.objects!,
          logger,
          now: Date.now,
          tokenKeys: async () => tokenKeys,
          uploadUrl: async () => "http://upload.test.example/",
        },
      );
      return record.id;
    },
    close: () => runtime.close(),
  };
}

// One builder for the tests and the benchmark: it lives where both may import it.
import { apiEvent } from "../../local/events";
export { apiEvent };

/**
 * A payload-2.0 event for one session's route (`/v1/sessions/{id}`, with `id` as its path
 * parameter), carrying `key` as the X-BB-API-Key header (no key header when `key` is undefined).
 */
export function sessionEvent(
  method: string,
  key: string | undefined,
  id: string,
  options: { body?: unknown; rawBody?: string } = {},
): APIGatewayProxyEventV2 {
  return apiEvent({
    method,
    path: `/v1/sessions/${id}`,
    routePath: "/v1/sessions/{id}",
    pathParameters: { id },
    headers: key === undefined ? undefined : { "X-BB-API-Key": key },
    ...options,
  });
}

export const ctx = () => ({ awsRequestId: "test-" + randomBytes(4).toString("hex") });
