import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { generateApiKey } from "../../lib/apikeys";
import { createMemoryLogger } from "../../lib/logger";
import { createMetrics } from "../../lib/metrics";
import { addApiKeyEntry, readSecrets, secretsPath, writeSecrets } from "../../local/secrets-file";
import { startLocalStack, type LocalStack } from "../../local/stack";
import { uniqueProject } from "../support/fixtures";
import { sharedRedis } from "../support/redis";

/** The status of `GET /v1/sessions` with `apiKey`, asked until it is `wanted` or `withinMs` passed. */
async function statusWithin(stack: LocalStack, apiKey: string, wanted: number, withinMs: number) {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const response = await fetch(`${stack.url}/v1/sessions`, { headers: { "x-bb-api-key": apiKey } });
    await response.arrayBuffer();
    if (response.status === wanted || Date.now() >= deadline) return response.status;
    await new Promise((done) => setTimeout(done, 50));
  }
}

describe("local stack", () => {
  let home: string;
  let stack: LocalStack;
  const emf: Record<string, unknown>[] = [];

  before(async () => {
    home = mkdtempSync(join(tmpdir(), "wc-stack-test-"));
    stack = await startLocalStack({
      home,
      port: 0,
      redisUrl: (await sharedRedis()).url,
      connect: false,
      // The steady stream of requests below would meet the default request rate limit. These tests
      // count secret reads, not latency: on busy cores a 500 ms Redis command timeout made one of
      // the steady requests a 503.
      env: { DEFAULT_REQUEST_RATE: "0", REDIS_COMMAND_TIMEOUT_MS: "5000" },
      logger: createMemoryLogger(),
      metrics: createMetrics({
        env: {},
        write: (line) => emf.push(JSON.parse(line) as Record<string, unknown>),
      }),
    });
  });

  after(async () => {
    await stack?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  it("accepts a key added to the secrets file within a second, and refuses it within a second of its removal", async () => {
    const file = secretsPath(home);
    const { key, entry } = generateApiKey(uniqueProject("stack"), { name: "added while running" });
    expect(await statusWithin(stack, key, 401, 0), "before it is added").to.equal(401);

    addApiKeyEntry(file, entry);
    expect(await statusWithin(stack, key, 200, 1000), "after it is added").to.equal(200);

    const secrets = readSecrets(file);
    secrets.apiKeys.keys = secrets.apiKeys.keys.filter((k) => k.hash !== entry.hash);
    writeSecrets(file, secrets);
    expect(await statusWithin(stack, key, 401, 1000), "after it is removed").to.equal(401);
  });

  it("reads the secrets file again only when it changes, not every second while requests wait", async () => {
    const { key, entry } = generateApiKey(uniqueProject("stack"), { name: "steady" });
    addApiKeyEntry(secretsPath(home), entry);
    expect(await statusWithin(stack, key, 200, 1000)).to.equal(200);
    emf.length = 0;
    const until = Date.now() + 1500;
    while (Date.now() < until) expect(await statusWithin(stack, key, 200, 0)).to.equal(200);
    const fetches = emf.filter((document) => document.SecretsLatency !== undefined);
    expect(fetches, "secret fetches (SecretsLatency samples) in 1.5 s of requests").to.deep.equal([]);
  });
});
