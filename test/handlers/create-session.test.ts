import { expect } from "chai";
import { rmSync } from "node:fs";
import { createSessionHandler } from "../../handlers/create-session";
import type { HttpHandler, HttpResult } from "../../lib/http";
import type { SessionDeps } from "../../lib/sessions";
import { keys, type SessionStore } from "../../lib/store";
import { decryptForProxy, verifySessionToken } from "../../lib/tokens";
import type { RedisServer } from "../../local/redis-server";
import { writeSecrets, readSecrets } from "../../local/secrets-file";
import { apiEvent, createTestWorld, ctx, uniqueProject, type TestWorld } from "../support/fixtures";
import { startOwnRedis } from "../support/redis";

/** Calls `handler` as API Gateway would for `POST /v1/sessions`. */
function poster(handler: () => HttpHandler) {
  return (key: string | undefined, body?: unknown, headers: Record<string, string> = {}, rawBody?: string) =>
    handler()(
      apiEvent({
        method: "POST",
        path: "/v1/sessions",
        body,
        rawBody,
        headers: key ? { "X-BB-API-Key": key, ...headers } : headers,
      }),
      ctx(),
    );
}

/** The JSON error body, checked for the API's error shape. */
function errorBody(res: HttpResult, statusCode: number, reason: string): { message: string } {
  expect(res.statusCode, res.body).to.equal(statusCode);
  expect(res.headers["content-type"]).to.match(/^application\/json/);
  const body = JSON.parse(res.body);
  // A concurrency 429 also names the limit and the live count.
  expect(body).to.have.keys(
    statusCode === 429
      ? ["statusCode", "error", "message", "limit", "running"]
      : ["statusCode", "error", "message"],
  );
  expect(body.statusCode).to.equal(statusCode);
  expect(body.error).to.equal(reason);
  expect(body.message).to.be.a("string").with.length.greaterThan(0);
  return body;
}

/** Text that must never reach a 5xx body. */
const INTERNALS =
  /ECONNREFUSED|ENOENT|ETIMEDOUT|stack|at .+\(|127\.0\.0\.1|Redis|ioredis|secrets\.json|boom/i;

describe("POST /v1/sessions", () => {
  let world: TestWorld;
  let handler: HttpHandler;

  before(async () => {
    world = await createTestWorld();
    handler = createSessionHandler(world.runtime);
  });
  after(() => world.close());

  const create = poster(() => handler);
  const redis = () => world.runtime.redis();
  const activeCount = async (project: string) => (await redis()).zcard(keys.active(project));

  describe("creating", () => {
    it("creates a RUNNING session with a connect URL whose token decrypts to the session", async () => {
      const project = uniqueProject();
      const key = world.addKey(project);
      const before = Date.now();
      const res = await create(key, { timeout: 120, userMetadata: { order: "42" } });
      expect(res.statusCode, res.body).to.equal(201);
      const body = JSON.parse(res.body);
      expect(body.id).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(body.status).to.equal("RUNNING");
      expect(body.projectId).to.equal(project);
      expect(body.region).to.equal("us-west-2");
      expect(body.keepAlive).to.equal(false);
      expect(body.proxyBytes).to.equal(0);
      expect(body.userMetadata).to.deep.equal({ order: "42" });
      for (const field of ["createdAt", "updatedAt", "startedAt", "expiresAt"]) {
        expect(body[field], field).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      }
      expect(body).not.to.have.any.keys("endedAt", "contextId");
      const expiresAt = Date.parse(body.expiresAt);
      expect(expiresAt - Date.parse(body.createdAt)).to.be.within(120_000, 120_999);
      expect(expiresAt % 1000, "expiresAt is a whole second").to.equal(0);
      expect(Date.parse(body.createdAt)).to.be.at.least(before);
      expect(body.connectUrl).to.equal(
        `wss://connect.test.example/v1/sessions/${body.id}/connect?signingKey=${body.signingKey}`,
      );
      expect(body.seleniumRemoteUrl).to.equal("https://connect.test.example/webdriver");
      const claims = await verifySessionToken(body.signingKey, world.tokenKeys, {
        issuer: "wallcrawler-api",
        audience: "wallcrawler-proxy",
        sessionId: body.id,
      });
      expect(claims.projectId).to.equal(project);
      expect(claims.expiresAt).to.equal(expiresAt / 1000);
      const stored = await (await redis()).hgetall(keys.session(project, body.id));
      expect(stored.status).to.equal("RUNNING");
      expect(Object.values(stored).join(" "), "the token is not stored").not.to.include(body.signingKey);
      expect(await (await redis()).zscore(keys.active(project), body.id)).to.equal(String(expiresAt));
    });

    it("gives each session its own id", async () => {
      const key = world.addKey(uniqueProject());
      const ids = new Set<string>();
      for (let i = 0; i < 3; i++) ids.add(JSON.parse((await create(key, {})).body).id);
      expect(ids.size).to.equal(3);
    });

    it("uses the default timeout of 300 s when none is given, and keeps keepAlive", async () => {
      const project = uniqueProject();
      const res = await create(world.addKey(project), { keepAlive: true });
      expect(res.statusCode, res.body).to.equal(201);
      const body = JSON.parse(res.body);
      expect(Date.parse(body.expiresAt) - Date.parse(body.createdAt)).to.be.within(300_000, 300_999);
      expect(body.keepAlive).to.equal(true);
      expect(await (await redis()).hget(keys.session(project, body.id), "keepAlive")).to.equal("1");
    });

    it("accepts an empty body", async () => {
      const res = await create(world.addKey(uniqueProject()), undefined);
      expect(res.statusCode, res.body).to.equal(201);
    });

    it("accepts the timeout bounds 60 and 21600", async () => {
      const key = world.addKey(uniqueProject());
      for (const timeout of [60, 21600]) {
        const res = await create(key, { timeout });
        expect(res.statusCode, res.body).to.equal(201);
        const body = JSON.parse(res.body);
        expect(Date.parse(body.expiresAt) - Date.parse(body.createdAt)).to.be.within(
          timeout * 1000,
          timeout * 1000 + 999,
        );
      }
    });

    it("accepts the key's own projectId", async () => {
      const project = uniqueProject();
      const res = await create(world.addKey(project), { projectId: project });
      expect(res.statusCode, res.body).to.equal(201);
    });

    it("returns contextId from browserSettings.context.id", async () => {
      const project = uniqueProject();
      const contextId = await world.addContext(project);
      const res = await create(world.addKey(project), {
        browserSettings: { context: { id: contextId.toUpperCase(), persist: true } },
      });
      expect(res.statusCode, res.body).to.equal(201);
      expect(JSON.parse(res.body).contextId).to.equal(contextId);
    });

    it("stores Browserbase's browserSettings for the Proxy and drops fields outside that set", async () => {
      const project = uniqueProject();
      const browserSettings = {
        viewport: { width: 1280, height: 720, deviceScaleFactor: 2 },
        blockAds: true,
        futureFlag: { nested: ["a", 1, true] },
        os: "linux",
        fingerprint: { locales: ["en-US"] },
      };
      const res = await create(world.addKey(project), { browserSettings });
      expect(res.statusCode, res.body).to.equal(201);
      const id = JSON.parse(res.body).id;
      const stored = await (await redis()).hget(keys.session(project, id), "browserSettings");
      expect(JSON.parse(stored ?? "null")).to.deep.equal({
        viewport: { width: 1280, height: 720 },
        blockAds: true,
        os: "linux",
        fingerprint: { locales: ["en-US"] },
      });
    });

    it("bounds what a session stores: a large fingerprint, too many allowedDomains, or a record over the byte cap is a 400", async () => {
      const key = world.addKey(uniqueProject());
      const cases: [unknown, RegExp][] = [
        [{ browserSettings: { fingerprint: { blob: "x".repeat(3000) } } }, /fingerprint.*at most 2048 bytes/],
        [
          { browserSettings: { allowedDomains: Array.from({ length: 101 }, (_, i) => `d${i}.example`) } },
          /allowedDomains.*at most 100/,
        ],
        [
          {
            userMetadata: { notes: "m".repeat(8000) },
            browserSettings: {
              allowedDomains: Array.from({ length: 100 }, (_, i) => `${"d".repeat(240)}${i}.example`),
            },
          },
          /the session would store \d+ bytes .*; the limit is 16384 bytes/,
        ],
      ];
      for (const [body, message] of cases) {
        const res = await create(key, body);
        expect(res.statusCode, res.body).to.equal(400);
        expect(JSON.parse(res.body).message).to.match(message);
      }
    });

    it("stores proxies encrypted for the Proxy and never returns or logs the password", async () => {
      const project = uniqueProject();
      const proxies = [
        { type: "external", server: "http://proxy.example:8080", username: "u", password: "hunter2-secret" },
        { type: "browserbase", domainPattern: ".*\\.example\\.com" },
      ];
      const res = await create(world.addKey(project), { proxies });
      expect(res.statusCode, res.body).to.equal(201);
      expect(res.body).not.to.include("hunter2");
      const id = JSON.parse(res.body).id;
      const stored = await (await redis()).hgetall(keys.session(project, id));
      expect(Object.values(stored).join(" ")).not.to.include("hunter2");
      expect(await decryptForProxy(world.tokenKeys, stored.proxies)).to.deep.equal({ proxies });
      expect(JSON.stringify(world.logger.lines)).not.to.include("hunter2");
    });

    it("gives exactly 5 of 100 concurrent creates against a limit of 5 a session", async () => {
      const project = uniqueProject();
      const key = world.addKey(project, { concurrency: 5 });
      const results = await Promise.all(Array.from({ length: 100 }, () => create(key, { timeout: 120 })));
      const statuses = results.map((r) => r.statusCode);
      expect(statuses.filter((s) => s === 201)).to.have.length(5);
      expect(statuses.filter((s) => s === 429)).to.have.length(95);
      expect(await activeCount(project)).to.equal(5);
      const ids = results.filter((r) => r.statusCode === 201).map((r) => JSON.parse(r.body).id);
      expect(await (await redis()).zrange(keys.active(project), "0", "-1")).to.have.members(ids);
    });
  });

  describe("validation", () => {
    let key: string;
    let project: string;
    before(() => {
      project = uniqueProject();
      key = world.addKey(project);
    });

    const cases: [string, unknown, RegExp][] = [
      ["a timeout that is a string", { timeout: "300" }, /^timeout: must be a whole number of seconds/],
      ["a fractional timeout", { timeout: 120.5 }, /^timeout: must be a whole number of seconds/],
      ["a timeout below 60", { timeout: 59 }, /^timeout: .*60 seconds/],
      ["a timeout above 21600", { timeout: 21601 }, /^timeout: .*21600 seconds/],
      [
        "a timeout in milliseconds",
        { timeout: 300000 },
        /^timeout: is in seconds.*300000 looks like milliseconds, send 300$/,
      ],
      ["userMetadata that is a string", { userMetadata: "x" }, /^userMetadata: must be a JSON object/],
      ["userMetadata that is an array", { userMetadata: [1, 2] }, /^userMetadata: must be a JSON object/],
      ["userMetadata that is null", { userMetadata: null }, /^userMetadata: must be a JSON object/],
      [
        "a viewport width that is not a number",
        { browserSettings: { viewport: { width: "x" } } },
        /^browserSettings\.viewport\.width: /,
      ],
      [
        "a viewport height of 0",
        { browserSettings: { viewport: { height: 0 } } },
        /^browserSettings\.viewport\.height: /,
      ],
      [
        "blockAds that is a string",
        { browserSettings: { blockAds: "yes" } },
        /^browserSettings\.blockAds: must be true or false/,
      ],
      [
        "solveCaptchas that is a number",
        { browserSettings: { solveCaptchas: 1 } },
        /^browserSettings\.solveCaptchas: must be true or false/,
      ],
      ["browserSettings that is a string", { browserSettings: "fast" }, /^browserSettings: /],
      [
        "an empty context id",
        { browserSettings: { context: { id: "" } } },
        /^browserSettings\.context\.id: must not be empty/,
      ],
      [
        "a proxy entry of an unknown type",
        { proxies: [{ type: "ftp" }] },
        /^proxies\.0(\.type)?: must have type "browserbase", "external" or "none"/,
      ],
      [
        "a later proxy entry of an unknown type",
        { proxies: [{ type: "none" }, { type: 7 }] },
        /^proxies\.1(\.type)?: must have type/,
      ],
      ["an external proxy without a server", { proxies: [{ type: "external" }] }, /^proxies\.0\.server: /],
      [
        "an external proxy whose password is a number",
        { proxies: [{ type: "external", server: "http://p", password: 5 }] },
        /^proxies\.0\.password: /,
      ],
      ["proxies that is a string", { proxies: "yes" }, /^proxies: must be true or a list/],
      ["keepAlive that is the string true", { keepAlive: "true" }, /^keepAlive: must be true or false/],
      ["a region that is not a region name", { region: "mars" }, /^region: must be an AWS region name/],
      [
        "a region this deployment does not serve",
        { region: "eu-central-1" },
        /^region eu-central-1 is not served by this deployment; it runs in us-west-2/,
      ],
    ];
    for (const [what, body, message] of cases) {
      it(`answers 400 naming the field for ${what}, and creates nothing`, async () => {
        const res = await create(key, body);
        expect(errorBody(res, 400, "Bad Request").message).to.match(message);
        expect(await activeCount(project)).to.equal(0);
      });
    }

    it("answers 400 with the size and limit for userMetadata over 8 KiB of JSON", async () => {
      const res = await create(key, { userMetadata: { blob: "x".repeat(9000) } });
      expect(errorBody(res, 400, "Bad Request").message).to.match(
        /^userMetadata is 90\d\d bytes of JSON; the limit is 8192 bytes$/,
      );
    });

    it("answers 400 'projectId does not match this API key' for another project's id", async () => {
      const other = uniqueProject();
      world.addKey(other);
      for (const projectId of [other, "never-existed"]) {
        const res = await create(key, { projectId });
        expect(errorBody(res, 400, "Bad Request").message).to.equal("projectId does not match this API key");
      }
      expect(await activeCount(other)).to.equal(0);
    });

    it("answers 413 for a body over 64 KiB", async () => {
      const res = await create(key, { userMetadata: { blob: "x".repeat(64 * 1024) } });
      expect(errorBody(res, 413, "Payload Too Large").message).to.match(/the limit is 65536 bytes/);
      expect(await activeCount(project)).to.equal(0);
    });

    it("answers 400 for a body that is not JSON", async () => {
      const res = await create(key, undefined, {}, '{"timeout": 120,');
      expect(errorBody(res, 400, "Bad Request").message).to.match(/^request body is not valid JSON/);
    });

    it("answers 400 for a JSON body that is not an object", async () => {
      for (const raw of ["[]", "42", '"text"', "null"]) {
        const res = await create(key, undefined, {}, raw);
        expect(errorBody(res, 400, "Bad Request").message, raw).to.equal(
          "request body must be a JSON object",
        );
      }
    });

    it("answers 400 for JSON nested deeper than 32 levels", async () => {
      let deep: unknown = "bottom";
      for (let i = 0; i < 40; i++) deep = { d: deep };
      const res = await create(key, { userMetadata: deep });
      expect(errorBody(res, 400, "Bad Request").message).to.match(/nests deeper than 32 levels/);
    });

    it("answers 400 for a __proto__ key anywhere and leaves Object.prototype alone", async () => {
      for (const raw of [
        '{"__proto__": {"polluted": true}}',
        '{"userMetadata": {"a": {"__proto__": {"polluted": true}}}}',
        '{"browserSettings": {"__proto__": {"blockAds": "yes"}}}',
      ]) {
        const res = await create(key, undefined, {}, raw);
        expect(errorBody(res, 400, "Bad Request").message, raw).to.match(/__proto__ is not allowed/);
      }
      expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
      expect(await activeCount(project)).to.equal(0);
    });
  });

  describe("authentication", () => {
    it("answers 401 asking for the key when there is none", async () => {
      const res = await create(undefined, {});
      expect(errorBody(res, 401, "Unauthorized").message).to.equal(
        "Missing API key: send it in the X-BB-API-Key header.",
      );
    });

    it("answers 401 describing the format for a malformed key", async () => {
      const res = await create("not-a-key", {});
      expect(errorBody(res, 401, "Unauthorized").message).to.match(/^Malformed API key/);
      expect(res.body).not.to.include("not-a-key");
    });

    it("answers 401 Invalid API key for a well-formed key that is not known", async () => {
      const res = await create("wc_" + "A".repeat(43), {});
      expect(errorBody(res, 401, "Unauthorized").message).to.equal("Invalid API key.");
    });

    it("checks the key before it looks at the body", async () => {
      const res = await create(undefined, undefined, {}, "{not json");
      errorBody(res, 401, "Unauthorized");
    });

    it("also takes the key from the x-api-key header", async () => {
      const project = uniqueProject();
      const key = world.addKey(project);
      const res = await create(undefined, {}, { "x-api-key": key });
      expect(res.statusCode, res.body).to.equal(201);
      expect(JSON.parse(res.body).projectId).to.equal(project);
    });

    it("falls through an empty X-BB-API-Key to x-api-key, and still prefers a non-empty X-BB-API-Key", async () => {
      const project = uniqueProject();
      const key = world.addKey(project);
      for (const empty of ["", "   "]) {
        const res = await create(undefined, {}, { "X-BB-API-Key": empty, "x-api-key": key });
        expect(res.statusCode, JSON.stringify(empty)).to.equal(201);
      }
      const other = world.addKey(uniqueProject());
      const both = await create(undefined, {}, { "X-BB-API-Key": other, "x-api-key": key });
      expect(JSON.parse(both.body).projectId).to.not.equal(project);
    });

    it("says which header to use when the key comes as Authorization: Bearer", async () => {
      const key = world.addKey(uniqueProject());
      const res = await create(undefined, {}, { authorization: `Bearer ${key}` });
      errorBody(res, 401, "Unauthorized");
      expect(JSON.parse(res.body).message).to.match(/X-BB-API-Key header .*not in Authorization/);
    });

    it("never writes the key into a log line", async () => {
      const key = world.addKey(uniqueProject());
      await create(key, {});
      await create(key.slice(0, -1) + (key.endsWith("A") ? "B" : "A"), {});
      expect(JSON.stringify(world.logger.lines)).not.to.include(key.slice(3, 30));
    });
  });

  describe("concurrency limit", () => {
    /** The handler with a clock the test moves (the store's pruning uses the same clock). */
    function clocked(start: number) {
      const clock = { now: start };
      const deps: SessionDeps = { ...world.runtime, now: () => clock.now };
      const h = createSessionHandler(deps);
      return { clock, create: poster(() => h) };
    }

    it("answers 429 with Retry-After = seconds until the earliest live session expires and names the limit", async () => {
      const project = uniqueProject();
      const key = world.addKey(project, { concurrency: 2 });
      // A whole second: expiresAt is rounded up to one, so the arithmetic below stays exact.
      const start = Math.floor(Date.now() / 1000) * 1000;
      const { clock, create: createAt } = clocked(start);
      expect((await createAt(key, { timeout: 300 })).statusCode).to.equal(201);
      clock.now = start + 1_000;
      expect((await createAt(key, { timeout: 120 })).statusCode).to.equal(201); // expires at start + 121 s

      clock.now = start + 5_000;
      const res = await createAt(key, { timeout: 60 });
      const body = errorBody(res, 429, "Too Many Requests");
      expect(res.headers["retry-after"]).to.equal("116");
      expect(body.message).to.equal(
        `project ${project} is at its limit of 2 concurrent sessions; release a session or retry in 116 s`,
      );
      expect(res.headers["x-should-retry"], "a long wait is beyond the SDK's retries").to.equal("false");
      // The body names the limit and the live count; the x-ratelimit-* headers say the same.
      expect(body).to.include({ limit: 2, running: 2 });
      expect(res.headers).to.include({
        "x-ratelimit-limit": "2",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": "116",
      });
      expect(await activeCount(project)).to.equal(2);
    });

    it("lets the SDK retry a 429 whose wait is a few seconds, and rounds the wait up", async () => {
      const project = uniqueProject();
      const key = world.addKey(project, { concurrency: 1 });
      // A whole second: expiresAt is rounded up to one, so the arithmetic below stays exact.
      const start = Math.floor(Date.now() / 1000) * 1000;
      const { clock, create: createAt } = clocked(start);
      await createAt(key, { timeout: 60 });
      clock.now = start + 57_500;
      const res = await createAt(key, {});
      expect(res.statusCode).to.equal(429);
      expect(res.headers["retry-after"]).to.equal("3");
      expect(res.headers["x-should-retry"]).to.equal("true");
    });

    it("creates again once the earliest session has expired", async () => {
      const project = uniqueProject();
      const key = world.addKey(project, { concurrency: 1 });
      // A whole second: expiresAt is rounded up to one, so the arithmetic below stays exact.
      const start = Math.floor(Date.now() / 1000) * 1000;
      const { clock, create: createAt } = clocked(start);
      expect((await createAt(key, { timeout: 60 })).statusCode).to.equal(201);
      clock.now = start + 59_999;
      expect((await createAt(key, {})).statusCode).to.equal(429);
      clock.now = start + 60_000;
      const res = await createAt(key, {});
      expect(res.statusCode, res.body).to.equal(201);
      expect(await activeCount(project)).to.equal(1);
    });

    it("uses the default concurrency of 25 for a key without its own limit", async () => {
      const project = uniqueProject();
      const key = world.addKey(project);
      const results = await Promise.all(Array.from({ length: 27 }, () => create(key, {})));
      expect(results.filter((r) => r.statusCode === 201)).to.have.length(25);
      expect(
        errorBody(
          results.find((r) => r.statusCode === 429)!,
          429,
          "Too Many Requests",
        ).message,
      ).to.include("limit of 25 concurrent sessions");
    });
  });

  describe("failures", () => {
    it("answers a generic 500 for an unexpected error and logs the detail instead", async () => {
      const failingStore = {
        create: async () => {
          throw new Error("boom: ECONNREFUSED 10.0.0.5:6379 at /var/task/lib/store.js");
        },
      } as unknown as SessionStore;
      const h = createSessionHandler({ ...world.runtime, store: failingStore });
      const res = await poster(() => h)(world.addKey(uniqueProject()), {});
      errorBody(res, 500, "Internal Server Error");
      expect(JSON.parse(res.body).message).to.equal("Internal server error.");
      expect(res.body).not.to.match(INTERNALS);
      const logged = world.logger.lines.filter((line) => line.level === "error");
      expect(JSON.stringify(logged.map((line) => line.extra))).to.include("ECONNREFUSED 10.0.0.5");
    });

    it("answers 503 without internals when the secrets source fails with nothing usable cached", async () => {
      const own = await createTestWorld({ env: { SECRETS_MAX_STALE_SECONDS: "0" } });
      try {
        const h = createSessionHandler(own.runtime);
        const key = own.addKey(uniqueProject());
        const saved = readSecrets(own.secretsFile);
        rmSync(own.secretsFile);
        const res = await poster(() => h)(key, {});
        errorBody(res, 503, "Service Unavailable");
        expect(JSON.parse(res.body).message).to.equal(
          "The service is temporarily unavailable; retry shortly.",
        );
        expect(res.headers["retry-after"]).to.equal("1");
        expect(res.body).not.to.match(INTERNALS);
        expect(res.body).not.to.include(own.secretsFile);
        writeSecrets(own.secretsFile, saved);
        expect((await poster(() => h)(key, {})).statusCode).to.equal(201);
      } finally {
        await own.close();
      }
    });
  });
});

describe("POST /v1/sessions while Redis is down", () => {
  let server: RedisServer;
  let world: TestWorld;
  let handler: HttpHandler;
  let project: string;
  let key: string;
  const create = poster(() => handler);

  before(async () => {
    server = await startOwnRedis();
    world = await createTestWorld({ redisUrl: server.url });
    handler = createSessionHandler(world.runtime);
    project = uniqueProject();
    key = world.addKey(project);
    const res = await create(key, {});
    expect(res.statusCode, res.body).to.equal(201);
  });
  after(async () => {
    await world.close();
    await server.stop();
  });

  it("answers 503 in seconds (the connect timeout, not the function's), with no internals in the body", async () => {
    await server.stop();
    for (let attempt = 0; attempt < 2; attempt++) {
      const started = Date.now();
      const res = await create(key, {});
      const elapsed = Date.now() - started;
      errorBody(res, 503, "Service Unavailable");
      // 500 ms connect timeout; the bound holds on a machine three times slower than usual.
      expect(elapsed, `attempt ${attempt} took ${elapsed} ms`).to.be.below(3000);
      expect(JSON.parse(res.body).message).to.equal("The service is temporarily unavailable; retry shortly.");
      expect(res.headers["retry-after"]).to.equal("1");
      expect(res.body).not.to.match(INTERNALS);
    }
  });

  it("serves the next request after Redis restarts, without replaying the refused creates", async () => {
    await server.restart();
    const res = await create(key, {});
    expect(res.statusCode, res.body).to.equal(201);
    // The restarted server kept no data: only this create may be in the active set.
    expect(await (await world.runtime.redis()).zrange(keys.active(project), "0", "-1")).to.deep.equal([
      JSON.parse(res.body).id,
    ]);
  });
});
