import { expect } from "chai";
import { Redis } from "ioredis";
import fc from "fast-check";
import { matchRoute, ROUTES } from "../../handlers/routes";
import type { HttpResult } from "../../lib/http";
import { keys } from "../../lib/store";
import { createTestWorld, uniqueProject, type TestWorld } from "../support/fixtures";
import { sharedRedis } from "../support/redis";
import { buildZip, manifestJson, multipartBody, zipWithEntryName } from "../support/zips";
import { apiFor, expectErrorShape, projectSnapshot, type Api, type ApiRequest } from "./api";

/** The answers the API documents for a request it refuses. 5xx is never one of them here. */
const DOCUMENTED_REFUSALS = [400, 401, 404, 405, 409, 413, 415, 429];
const SUCCESSES = [200, 201, 204];

describe("bad input: property-based requests to every route", function () {
  this.timeout(60_000);
  let world: TestWorld;
  let api: Api;
  // Fixed when the describe is defined: the generators below use them.
  const project = uniqueProject("fuzz");
  const other = uniqueProject("fuzz-other");
  let key: string;
  let otherKey: string;
  const ids = { live: "", ended: "", foreign: "" };
  const counts = { requests: 0, refused: 0, succeeded: 0 };
  const statuses = new Map<number, number>();
  const routesHit = new Set<string>();

  before(async () => {
    world = await createTestWorld();
    api = apiFor(world.runtime);
    key = world.addKey(project, { concurrency: 100_000 });
    otherKey = world.addKey(other);
    ids.live = await make(key);
    ids.ended = await make(key);
    const released = await api.send({
      method: "POST",
      path: `/v1/sessions/${ids.ended}`,
      key,
      body: { status: "REQUEST_RELEASE" },
    });
    expect(released.statusCode).to.equal(200);
    ids.foreign = await make(otherKey);
  });

  const make = async (apiKey: string) => {
    const res = await api.send({
      method: "POST",
      path: "/v1/sessions",
      key: apiKey,
      body: { timeout: 3600 },
    });
    expect(res.statusCode, res.body).to.equal(201);
    return JSON.parse(res.body).id as string;
  };

  after(async () => {
    reader?.disconnect();
    const unexpected = world.logger.lines.filter((line) => line.level === "error");
    console.log(
      `      ${counts.requests} generated requests: ${counts.succeeded} succeeded, ${counts.refused} refused; ` +
        `statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`,
    );
    await world.close();
    expect(unexpected, "error-level log lines (a 5xx or an unexpected error)").to.deep.equal([]);
  });

  // The test's own reader, with a patient timeout: a snapshot SCANs the whole shared Redis, which
  // on a busy machine can take longer than the API's 500 ms command timeout.
  let reader: Redis | undefined;
  const snapshot = async () => {
    reader ??= new Redis((await sharedRedis()).url, { commandTimeout: 20_000, maxRetriesPerRequest: 1 });
    return (await projectSnapshot(reader, project)) + (await projectSnapshot(reader, other));
  };

  /**
   * Sends one request and checks the contract: a documented refusal with the JSON error shape and
   * the store exactly as it was, or a success. A created session is removed again afterwards, so
   * each run starts from the same store.
   */
  async function exercise(request: ApiRequest): Promise<HttpResult> {
    const before = await snapshot();
    let res: HttpResult;
    try {
      res = await api.send(request);
    } catch (error) {
      expect.fail(`the handler threw instead of answering: ${String(error)}`);
    }
    counts.requests++;
    const match = matchRoute(ROUTES, request.method, request.path);
    routesHit.add(match.kind === "match" ? match.route.name : "$default");
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
    const summary = `${request.method} ${request.path.slice(0, 120)} -> ${res.statusCode} ${res.body.slice(0, 300)}`;
    expect([...SUCCESSES, ...DOCUMENTED_REFUSALS], summary).to.include(res.statusCode);
    expect(({} as Record<string, unknown>).polluted, "Object.prototype was polluted").to.equal(undefined);
    if (res.statusCode >= 400) {
      counts.refused++;
      expectErrorShape(res);
      if (res.statusCode === 429) expect(res.headers["retry-after"]).to.match(/^\d+$/);
      if (res.statusCode === 405) expect(res.headers.allow).to.be.a("string");
      expect(await snapshot(), `the store changed after a refused request: ${summary}`).to.equal(before);
    } else {
      counts.succeeded++;
      if (res.headers["content-type"]?.startsWith("application/json"))
        expect(() => JSON.parse(res.body), summary).not.to.throw();
      else expect([204, 200], summary).to.include(res.statusCode); // no body, or the downloads zip
      const kind = /^\/v1\/(extensions|contexts)/.exec(request.path)?.[1];
      if (res.statusCode === 201 && kind) {
        const { id } = JSON.parse(res.body) as { id: string };
        // The key may have come in a fuzzed header: delete with whichever project's key owns it.
        let removed = 0;
        for (const owner of [request.key, key, otherKey]) {
          if (removed === 204 || owner === undefined) continue;
          removed = (await api.send({ method: "DELETE", path: `/v1/${kind}/${id}`, key: owner })).statusCode;
        }
        expect(removed).to.equal(204);
        expect(await snapshot(), "cleanup restored the store").to.equal(before);
      } else if (res.statusCode === 201) {
        const { id, projectId } = JSON.parse(res.body) as { id: string; projectId: string };
        const redis = await world.runtime.redis();
        const idem = Object.entries(request.headers ?? {}).find(
          ([name]) => name.toLowerCase() === "idempotency-key",
        );
        await redis.del(keys.session(projectId, id), ...(idem ? [keys.idempotency(projectId, idem[1])] : []));
        await redis.zrem(keys.active(projectId), id);
        await redis.zrem(keys.sessions(projectId), id);
        expect(await snapshot(), "cleanup restored the store").to.equal(before);
      }
      // A well-formed release of the live session is a success that ends it: make a new live one.
      if (request.method.toUpperCase() === "POST" && request.path.toLowerCase().includes(ids.live)) {
        ids.live = await make(key);
      }
    }
    return res;
  }

  // Values that probe type and range checks: out-of-range numbers, wrong types, unicode.
  const oddNumber = fc.oneof(
    fc.integer(),
    fc.double(),
    fc.constantFrom(
      0,
      -1,
      59,
      60,
      61,
      21600,
      21601,
      60.5,
      2 ** 31,
      2 ** 53 + 1,
      1e308,
      -1e308,
      5e-324,
      3_600_000,
    ),
  );
  const oddValue = fc.oneof(
    oddNumber,
    fc.string({ unit: "grapheme", maxLength: 40 }),
    fc.string({ unit: "binary", maxLength: 40 }),
    fc.boolean(),
    fc.constant(null),
    fc.jsonValue({ maxDepth: 3 }),
  );
  const createBody = fc.record(
    {
      projectId: fc.oneof(fc.constant(project), fc.constant(other), oddValue),
      timeout: fc.oneof(fc.integer({ min: 60, max: 21600 }), oddValue),
      keepAlive: fc.oneof(fc.boolean(), oddValue),
      region: fc.oneof(fc.constantFrom("us-west-2", "eu-west-1", "mars-1", ""), oddValue),
      extensionId: oddValue,
      userMetadata: fc.oneof(
        fc.dictionary(fc.string({ unit: "grapheme" }), fc.jsonValue({ maxDepth: 4 })),
        oddValue,
      ),
      browserSettings: fc.oneof(
        fc.record(
          {
            viewport: fc.oneof(fc.record({ width: oddNumber, height: oddNumber }), oddValue),
            context: fc.oneof(fc.record({ id: oddValue, persist: oddValue }), oddValue),
            blockAds: oddValue,
            os: oddValue,
            allowedDomains: fc.oneof(fc.array(oddValue, { maxLength: 5 }), oddValue),
          },
          { requiredKeys: [] },
        ),
        oddValue,
      ),
      proxies: fc.oneof(
        fc.boolean(),
        fc.array(
          fc.oneof(
            fc.record(
              {
                type: fc.constantFrom("external", "browserbase", "none", "x"),
                server: oddValue,
                password: oddValue,
              },
              { requiredKeys: ["type"] },
            ),
            oddValue,
          ),
          { maxLength: 25 },
        ),
        oddValue,
      ),
    },
    { requiredKeys: [] },
  );

  it("create: any JSON body gets 201 or a documented 4xx, and a refusal changes nothing", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(createBody, fc.jsonValue({ maxDepth: 4 })), async (body) => {
        await exercise({ method: "POST", path: "/v1/sessions", key, body });
      }),
      { numRuns: 250 },
    );
  });

  it("create and update: any body text (not JSON, unicode, base64, literals out of range) is refused cleanly", async () => {
    const literal = fc.constantFrom(
      '{"timeout": 1e400}',
      '{"timeout": -1e400}',
      '{"timeout": 123456789012345678901234567890}',
      '{"timeout": 60.0000000000000000001}',
      '{"timeout": 60, "timeout": "sixty"}',
      '{"status": "REQUEST_RELEASE", "status": "RUNNING"}',
      '{"userMetadata": {"\\ud800": "\\udfff"}}',
      '"just a string"',
      "[]",
      "null",
      "1e400",
      "\ufeff{}",
      "{",
      "{}}",
      '{"a":1}garbage',
    );
    const text = fc.oneof(
      literal,
      fc.string({ unit: "binary", maxLength: 200 }),
      fc.string({ unit: "grapheme", maxLength: 200 }),
      fc.json({ maxDepth: 3 }),
    );
    const route = fc.constantFrom(
      "/v1/sessions",
      () => `/v1/sessions/${ids.live}`,
      () => `/v1/sessions/${ids.ended}`,
      () => `/v1/sessions/${ids.foreign}`,
    );
    await fc.assert(
      fc.asyncProperty(route, text, fc.boolean(), async (path, rawBody, base64) => {
        const target = typeof path === "function" ? path() : path;
        // A body API Gateway marks base64 is sent as base64 of the text.
        const body = base64 ? Buffer.from(rawBody, "utf8").toString("base64") : rawBody;
        const res = await exercise({
          method: "POST",
          path: target,
          key,
          rawBody: body,
          isBase64Encoded: base64,
        });
        // Releasing the live session would change later runs' world: only a well-formed release may succeed.
        if (target.endsWith(ids.live) && res.statusCode === 200) {
          expect(JSON.parse(rawBody)).to.deep.include({ status: "REQUEST_RELEASE" });
        }
      }),
      { numRuns: 200 },
    );
  });

  it("refuses __proto__ keys anywhere in a body and never pollutes Object.prototype", async () => {
    const where = fc.constantFrom(
      (v: string) => `{"__proto__": ${v}}`,
      (v: string) => `{"timeout": 120, "__proto__": ${v}}`,
      (v: string) => `{"userMetadata": {"__proto__": ${v}}}`,
      (v: string) => `{"userMetadata": {"a": [{"b": {"__proto__": ${v}}}]}}`,
      (v: string) => `{"browserSettings": {"context": {"id": "c", "__proto__": ${v}}}}`,
      (v: string) => `{"browserSettings": {"__proto__": ${v}}}`,
      (v: string) => `{"proxies": [{"type": "external", "server": "http://p", "__proto__": ${v}}]}`,
      (v: string) => `{"status": "REQUEST_RELEASE", "__proto__": ${v}}`,
      (v: string) => `{"constructor": {"prototype": ${v}}}`,
    );
    const payload = fc.oneof(
      fc.constant('{"polluted": true}'),
      fc.constant('{"status": "COMPLETED", "projectId": "someone-else"}'),
      fc.json({ maxDepth: 2 }),
    );
    const path = fc.constantFrom("/v1/sessions", "update");
    await fc.assert(
      fc.asyncProperty(where, payload, path, async (wrap, value, target) => {
        const rawBody = wrap(value);
        const res = await exercise({
          method: "POST",
          path: target === "update" ? `/v1/sessions/${ids.ended}` : "/v1/sessions",
          key,
          rawBody,
        });
        if (rawBody.includes('"__proto__"')) {
          expect(res.statusCode, rawBody).to.equal(400);
          expect(JSON.parse(res.body).message).to.include("__proto__");
        }
      }),
      { numRuns: 60 },
    );
  });

  it("refuses bodies nested too deep, over the size limit or with oversized userMetadata", async () => {
    const max = world.config.maxBodyBytes;
    const nested = (depth: number, open: string, close: string, inner: string) =>
      open.repeat(depth) + inner + close.repeat(depth);
    const deep = fc.record({
      depth: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 64, max: 30_000 })),
      shape: fc.constantFrom("array", "object"),
      under: fc.constantFrom("direct", "nested"),
    });
    await fc.assert(
      fc.asyncProperty(deep, async ({ depth, shape, under }) => {
        const inner = shape === "array" ? nested(depth, "[", "]", "1") : nested(depth, '{"a":', "}", "1");
        // The root object is level 0; `innermost` is the level of the deepest array or object.
        const rawBody =
          under === "direct" ? `{"userMetadata": ${inner}}` : `{"userMetadata": {"x": ${inner}}}`;
        const innermost = under === "direct" ? depth : depth + 1;
        const res = await exercise({ method: "POST", path: "/v1/sessions", key, rawBody });
        if (Buffer.byteLength(rawBody) > max) expect(res.statusCode).to.equal(413);
        else if (innermost >= 32) expect(res.statusCode, `nesting ${innermost}`).to.equal(400);
        else if (shape === "object" && Buffer.byteLength(inner) < 4000)
          expect(res.statusCode, res.body).to.equal(201);
      }),
      { numRuns: 60 },
    );
    const size = fc.oneof(
      fc.integer({ min: max - 64, max: max + 64 }),
      fc.integer({ min: max, max: 4 * max }),
    );
    await fc.assert(
      fc.asyncProperty(size, fc.boolean(), async (bytes, base64) => {
        const prefix = '{"userMetadata": {"pad": "';
        const suffix = '"}}';
        const rawBody = prefix + "x".repeat(Math.max(0, bytes - prefix.length - suffix.length)) + suffix;
        const sent = base64 ? Buffer.from(rawBody).toString("base64") : rawBody;
        const res = await exercise({
          method: "POST",
          path: "/v1/sessions",
          key,
          rawBody: sent,
          isBase64Encoded: base64,
        });
        if (Buffer.byteLength(rawBody) > max) expect(res.statusCode).to.equal(413);
        else expect(res.statusCode, "userMetadata over its own limit").to.equal(400);
      }),
      { numRuns: 30 },
    );
  });

  it("answers any header set, duplicates comma-joined as API Gateway sends them, with 2xx or a documented 4xx", async () => {
    const keyHeader = fc.oneof(
      fc.constant(key),
      fc.constant(`${key},${key}`),
      fc.constant(`${key}, ${otherKey}`),
      fc.constant(` ${key} `),
      fc.constant(key.toUpperCase()),
      fc.constant(key.slice(0, -1)),
      fc.constant(otherKey),
      fc.string({ unit: "grapheme", maxLength: 60 }),
      fc.string({ unit: "binary", maxLength: 60 }),
    );
    const headers = fc.record(
      {
        "x-bb-api-key": keyHeader,
        "x-api-key": keyHeader,
        "idempotency-key": fc.oneof(
          fc.string({ maxLength: 300 }),
          fc.string({ unit: "grapheme", maxLength: 20 }),
          fc.constant("a,b"),
          fc.constant(""),
        ),
        "content-type": fc.constantFrom(
          "application/json",
          "text/plain",
          "application/octet-stream",
          "",
          "a,b",
        ),
        "content-length": fc.oneof(fc.constant("-1"), fc.constant("99999999999"), fc.nat().map(String)),
        "x-forwarded-for": fc.string({ maxLength: 50 }),
      },
      { requiredKeys: [] },
    );
    const target = fc.constantFrom(
      { method: "POST", path: () => "/v1/sessions", body: { timeout: 120 } },
      { method: "GET", path: () => "/v1/sessions", body: undefined },
      { method: "GET", path: () => `/v1/sessions/${ids.live}`, body: undefined },
      { method: "GET", path: () => `/v1/sessions/${ids.foreign}`, body: undefined },
      { method: "POST", path: () => `/v1/sessions/${ids.ended}`, body: { status: "REQUEST_RELEASE" } },
      { method: "GET", path: () => `/v1/sessions/${ids.live}/debug`, body: undefined },
      { method: "DELETE", path: () => `/v1/sessions/${ids.live}`, body: undefined },
      { method: "POST", path: () => "/v1/extensions", body: undefined },
      { method: "GET", path: () => `/v1/extensions/${ids.foreign}`, body: undefined },
      { method: "DELETE", path: () => `/v1/extensions/${ids.foreign}`, body: undefined },
      { method: "GET", path: () => "/health", body: undefined },
      { method: "GET", path: () => "/v1/projects", body: undefined },
      { method: "POST", path: () => `/v1/sessions/${ids.live}/uploads`, body: undefined },
      { method: "GET", path: () => `/v1/sessions/${ids.live}/downloads`, body: undefined },
      { method: "GET", path: () => `/v1/sessions/${ids.foreign}/logs`, body: undefined },
      { method: "GET", path: () => `/v1/projects/${project}`, body: undefined },
      { method: "GET", path: () => `/v1/projects/${other}/usage`, body: undefined },
      { method: "POST", path: () => "/v1/contexts", body: { name: "fuzz" } },
      { method: "GET", path: () => `/v1/contexts/${ids.foreign}`, body: undefined },
      { method: "PUT", path: () => `/v1/contexts/${ids.foreign}`, body: undefined },
      { method: "DELETE", path: () => `/v1/contexts/${ids.foreign}`, body: undefined },
    );
    await fc.assert(
      fc.asyncProperty(target, headers, async (route, sent) => {
        const res = await exercise({
          method: route.method,
          path: route.path(),
          headers: sent,
          body: route.body,
        });
        // An empty X-BB-API-Key falls through to x-api-key.
        const presented = sent["x-bb-api-key"]?.trim() || sent["x-api-key"];
        if (
          route.method !== "DELETE" &&
          route.path() !== "/health" && // needs no key
          presented !== undefined &&
          ![key, otherKey].includes(presented.trim())
        ) {
          expect(res.statusCode, `key ${JSON.stringify(presented)}`).to.equal(401);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("answers any query string on list and debug with 200 or 400", async () => {
    const q = fc.oneof(
      fc.string({ unit: "grapheme", maxLength: 80 }),
      fc.string({ unit: "binary", maxLength: 80 }),
      fc.constantFrom(
        "user_metadata['a']:'b'",
        "user_metadata['a']['b']:1 AND user_metadata['c']:\"d\"",
        "user_metadata['a']:'b' AND",
        "user_metadata[",
        "user_metadata['__proto__']:'x'",
        "user_metadata['constructor']['prototype']:'x'",
        "'".repeat(3000),
        Array.from({ length: 12 }, (_, i) => `user_metadata['k${i}']:'v'`).join(" AND "),
      ),
    );
    const query = fc.record(
      {
        status: fc.oneof(
          fc.constantFrom(
            "RUNNING",
            "COMPLETED",
            "TIMED_OUT",
            "ERROR",
            "PENDING",
            "running",
            "RUNNING,COMPLETED",
            "",
          ),
          fc.string({ maxLength: 20 }),
        ),
        q,
        expiresIn: fc.oneof(
          fc.nat().map(String),
          fc.constantFrom(
            "0",
            "1",
            "21600",
            "21601",
            "-1",
            "1.5",
            "1e3",
            "0x10",
            " 5",
            "99999999999999999999",
            "",
          ),
          fc.string({ maxLength: 10 }),
        ),
        unrelated: fc.string({ maxLength: 20 }),
      },
      { requiredKeys: [] },
    );
    const path = fc.constantFrom(
      () => "/v1/sessions",
      () => `/v1/sessions/${ids.live}/debug`,
      () => `/v1/sessions/${ids.ended}/debug`,
    );
    await fc.assert(
      fc.asyncProperty(path, query, async (target, params) => {
        const res = await exercise({ method: "GET", path: target(), key, query: params });
        expect([200, 400], res.body).to.include(res.statusCode);
      }),
      { numRuns: 200 },
    );
  });

  it("answers any method and path (ids, encodings, unicode, lengths) with a documented status, JSON included", async () => {
    const id = fc.oneof(
      fc.constant(() => ids.live),
      fc.constant(() => ids.live.toUpperCase()),
      fc.constant(() => ids.foreign),
      fc.constant(() => ids.ended),
      fc.uuid().map((u) => () => u),
      fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }).map((s) => () => encodeURIComponent(s)),
      fc.string({ unit: "binary", minLength: 1, maxLength: 40 }).map((s) => () => s.replace(/[/?#]/g, "")),
      fc
        .constantFrom(
          "%",
          "%zz",
          "%00",
          "%2F",
          "%2e%2e",
          "..",
          ".",
          "%E0%A4%A",
          "a".repeat(5000),
          "\u0000",
          "null",
        )
        .map((s) => () => s),
    );
    const suffix = fc.constantFrom("", "/", "/debug", "/debug/", "/connect", "//", "/debug/x");
    const method = fc.oneof(
      fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get", "post", "TRACE"),
      fc.string({ minLength: 1, maxLength: 10 }),
    );
    const path = fc.oneof(
      fc.tuple(id, suffix).map(
        ([make, tail]) =>
          () =>
            `/v1/sessions/${make()}${tail}`,
      ),
      fc
        .constantFrom(
          "/",
          "",
          "/v1",
          "/v1/",
          "/v1/sessions/",
          "/v2/sessions",
          "/V1/SESSIONS",
          "//v1//sessions",
        )
        .map((p) => () => p),
      fc.webPath().map((p) => () => p),
    );
    const body = fc.oneof(
      fc.constant(undefined),
      fc.constant({ status: "REQUEST_RELEASE" }),
      fc.constant({}),
      fc.jsonValue({ maxDepth: 2 }),
    );
    const withKey = fc.constantFrom(true, true, true, false);
    await fc.assert(
      fc.asyncProperty(method, path, body, withKey, async (verb, makePath, sent, authenticated) => {
        const target = makePath();
        const res = await exercise({
          method: verb,
          path: target,
          key: authenticated ? key : undefined,
          body: sent,
        });
        // A release may succeed only for a session that is already ended (releasing it changes nothing).
        if (res.statusCode === 200 && verb.toUpperCase() === "POST") {
          expect(JSON.parse(res.body).status, target).to.not.equal("RUNNING");
        }
      }),
      { numRuns: 250 },
    );
  });

  it("extensions: any upload (random bytes, broken or valid zips, odd content types) gets 201 or a documented 4xx", async () => {
    const entryName = fc.oneof(
      fc.constantFrom("manifest.json", "a/b.js", "../up.js", "/abs.js", "a\\b.js", "x".repeat(300)),
      fc.string({ unit: "grapheme", minLength: 1, maxLength: 30 }),
    );
    const manifest = fc.oneof(
      fc.constant(manifestJson()),
      fc.json({ maxDepth: 2 }),
      fc
        .record({
          manifest_version: fc.oneof(fc.constantFrom(2, 3), fc.integer()),
          name: fc.oneof(fc.string(), fc.integer()),
          version: fc.oneof(fc.string(), fc.constant(null)),
        })
        .map((m) => JSON.stringify(m)),
    );
    const file = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
      fc
        .tuple(manifest, fc.array(fc.tuple(entryName, fc.string({ maxLength: 50 })), { maxLength: 4 }))
        .map(([m, entries]) => ({ m, entries })),
    );
    const contentType = fc.constantFrom(undefined, "application/json", "multipart/form-data", "text/plain");
    await fc.assert(
      fc.asyncProperty(file, contentType, fc.constantFrom("file", "files", ""), async (made, type, field) => {
        let bytes: Buffer;
        if (Buffer.isBuffer(made)) bytes = made;
        else {
          const unsafe = made.entries.find(([name]) => /^\/|\.\./.test(name));
          bytes = unsafe
            ? await zipWithEntryName(unsafe[0].slice(0, 200))
            : await buildZip(
                Object.fromEntries([
                  ...made.entries.filter(([name]) => name !== "manifest.json" && !/[\\\0]/.test(name)),
                  ["manifest.json", made.m],
                ]),
              ).catch(() => Buffer.from("not a zip"));
        }
        const { body, contentType: formType } = await multipartBody(bytes, { fieldName: field || "x" });
        const res = await exercise({
          method: "POST",
          path: "/v1/extensions",
          key,
          rawBody: body.toString("base64"),
          isBase64Encoded: true,
          headers: { "content-type": type ?? formType },
        });
        if (type !== undefined && res.statusCode < 500) expect(res.statusCode).to.not.equal(201);
      }),
      { numRuns: 150 },
    );
  });

  it("reached every route and the fallback", () => {
    expect([...routesHit].sort()).to.deep.equal([...ROUTES.map((route) => route.name), "$default"].sort());
  });
});
