/**
 * The code a function really ships: the create-session function's serialized `__index.js`, as
 * the program's CallbackFunction put it in the archive, is loaded with `require` and answers a
 * payload-2.0 request against a real Redis (with AUTH, as on ElastiCache) and secrets from a
 * local file in the deployed secrets' formats.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { Redis } from "ioredis";
import { generateApiKey } from "../../lib/apikeys";
import { rotateTokenKeySet, verifySessionToken } from "../../lib/tokens";
import type { HttpHandler } from "../../lib/http";
import { apiEvent, ctx } from "../support/fixtures";
import { createSessionCode, functionEnv, redisWithAuth } from "./serialized";

const REPO = join(__dirname, "..", "..");

describe("a serialized handler from the code package", function () {
  this.timeout(240_000); // loading the program waits for settle() (see mocks.ts)
  const { key, entry } = generateApiKey("serial");
  const tokenKeys = rotateTokenKeySet(undefined, "k1");
  const authToken = "serialized-test-auth-token-0123456789abcdef";
  const savedEnv = { ...process.env };
  let dir: string;
  let code: string;
  let handler: HttpHandler;
  let admin: Redis;

  before(async () => {
    code = await createSessionCode();
    const redis = await redisWithAuth(authToken);
    admin = redis.admin;

    // Inside the repo (git-ignored), so the generated code's `require`s resolve node_modules.
    mkdirSync(join(REPO, "node_modules", ".cache"), { recursive: true });
    dir = mkdtempSync(join(REPO, "node_modules", ".cache", "wallcrawler-serialized-"));
    writeFileSync(join(dir, "__index.js"), code);

    Object.assign(
      process.env,
      functionEnv(dir, {
        redisUrl: redis.url,
        entry,
        project: { id: "serial", concurrency: 2 },
        tokenKeys,
        authToken,
      }),
    );
    // The module runs the factory when loaded, as Lambda does at cold start.
    handler = require(join(dir, "__index.js")).handler as HttpHandler;
  });

  after(() => {
    for (const name of Object.keys(process.env)) if (!(name in savedEnv)) delete process.env[name];
    Object.assign(process.env, savedEnv);
    admin?.disconnect();
    if (dir) {
      delete require.cache[join(dir, "__index.js")];
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("is self-contained: it requires packages, never the repo's own modules", () => {
    expect(code).to.match(/exports\.handler = /);
    expect(code).to.not.match(/require\("\.{1,2}\//);
    expect(code).to.not.include(REPO);
  });

  it("creates a session: 201 with a token the Proxy's verifier accepts, stored in Redis behind AUTH", async () => {
    const response = await handler(
      apiEvent({
        method: "POST",
        path: "/v1/sessions",
        headers: { "x-bb-api-key": key },
        body: { timeout: 120, userMetadata: { run: "serialized" } },
      }),
      ctx(),
    );
    expect(response.statusCode, response.body).to.equal(201);
    const session = JSON.parse(response.body);
    expect(session).to.include({ projectId: "serial", status: "RUNNING", region: "us-west-2" });
    const claims = await verifySessionToken(session.signingKey, tokenKeys, {
      issuer: "wallcrawler-api",
      audience: "wallcrawler-proxy",
      sessionId: session.id,
    });
    expect(claims).to.include({ sessionId: session.id, projectId: "serial", scope: "connect" });
    expect(session.connectUrl).to.equal(
      `wss://connect.test.example/v1/sessions/${session.id}/connect?signingKey=${encodeURIComponent(session.signingKey)}`,
    );
    expect(await admin.exists(`wc:{serial}:session:${session.id}`)).to.equal(1);
  });

  it("keeps one Redis connection across invocations (the factory ran once)", async () => {
    const clients = async () =>
      String(await admin.client("LIST"))
        .trim()
        .split("\n").length;
    const before = await clients();
    for (let i = 0; i < 3; i++) {
      const response = await handler(
        apiEvent({
          method: "POST",
          path: "/v1/sessions",
          headers: { "x-bb-api-key": "wc_" + "A".repeat(43) },
          body: {},
        }),
        ctx(),
      );
      expect(response.statusCode).to.equal(401);
      const ok = await handler(
        apiEvent({
          method: "POST",
          path: "/v1/sessions",
          headers: { "x-bb-api-key": key },
          body: { timeout: 60 },
        }),
        ctx(),
      );
      expect(ok.statusCode).to.be.oneOf([201, 429]);
    }
    expect(await clients()).to.equal(before);
  });
});
