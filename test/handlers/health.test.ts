import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { createSessionHandler } from "../../handlers/create-session";
import { healthHandler } from "../../handlers/health";
import { createMemoryLogger } from "../../lib/logger";
import { createRuntime } from "../../lib/runtime";
import { closedPort } from "../compat/support";
import { apiEvent, createTestWorld, ctx, type TestWorld } from "../support/fixtures";

describe("GET /health", () => {
  const check = (world: TestWorld) =>
    healthHandler(world.runtime)(apiEvent({ method: "GET", path: "/health" }), ctx());

  it("answers 200 without an API key when Redis and both secrets are reachable", async () => {
    const world = await createTestWorld();
    try {
      const res = await check(world);
      expect(res.statusCode).to.equal(200);
      expect(JSON.parse(res.body)).to.deep.equal({ status: "ok", redis: "ok", secrets: "ok" });
    } finally {
      await world.close();
    }
  });

  it("answers 503 naming Redis when it is down, and says nothing more (no host, port or error text)", async () => {
    const port = await closedPort();
    const world = await createTestWorld({ redisUrl: `redis://127.0.0.1:${port}` });
    try {
      const res = await check(world);
      expect(res.statusCode).to.equal(503);
      expect(JSON.parse(res.body)).to.deep.equal({
        status: "unavailable",
        redis: "unavailable",
        secrets: "ok",
      });
      expect(res.body).to.not.include(String(port));
    } finally {
      await world.close();
    }
  });

  it("answers 503 naming the secrets when a container cannot read them", async () => {
    const world = await createTestWorld();
    const dir = mkdtempSync(join(tmpdir(), "wc-health-"));
    // A container whose token-key secret does not exist (nothing cached to fall back on).
    const runtime = createRuntime({
      config: { ...world.config, tokenKeysSecretRef: `file:${join(dir, "missing.json")}#tokenKeys` },
      logger: createMemoryLogger(),
    });
    try {
      const res = await healthHandler(runtime)(apiEvent({ method: "GET", path: "/health" }), ctx());
      expect(res.statusCode).to.equal(503);
      expect(JSON.parse(res.body)).to.deep.equal({
        status: "unavailable",
        redis: "ok",
        secrets: "unavailable",
      });
      expect(res.body).to.not.include(dir);
    } finally {
      await runtime.close();
      await world.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a malformed secret at request time", () => {
  it("answers 503 (not 500) and logs which secret is wrong, without quoting it", async () => {
    const world = await createTestWorld();
    try {
      const secrets = JSON.parse(readFileSync(world.secretsFile, "utf8"));
      secrets.apiKeys = { keys: [{ hash: "sha256:not-hex", projectId: "local" }] };
      writeFileSync(world.secretsFile, JSON.stringify(secrets));
      const res = await createSessionHandler(world.runtime)(
        apiEvent({
          method: "POST",
          path: "/v1/sessions",
          body: {},
          headers: { "x-bb-api-key": "wc_" + "A".repeat(43) },
        }),
        ctx(),
      );
      expect(res.statusCode).to.equal(503);
      const logged = world.logger.lines.find((line) => line.message?.startsWith("a secret is malformed"));
      expect(logged, JSON.stringify(world.logger.lines.map((l) => l.message))).to.not.equal(undefined);
      expect(JSON.stringify(logged)).to.include(world.config.apiKeysSecretRef).and.not.include("not-hex");
    } finally {
      await world.close();
    }
  });
});
