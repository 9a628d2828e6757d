import { verifySessionToken } from "../../lib/tokens";
import { randomUUID } from "node:crypto";
import { expect } from "chai";
import { createSessionHandler } from "../../handlers/create-session";
import { getSessionHandler } from "../../handlers/get-session";
import type { HttpHandler, HttpResult } from "../../lib/http";
import {
  apiEvent,
  createTestWorld,
  ctx,
  sessionEvent,
  uniqueProject,
  type TestWorld,
} from "../support/fixtures";

const SESSION_FIELDS = [
  "createdAt",
  "expiresAt",
  "id",
  "keepAlive",
  "projectId",
  "proxyBytes",
  "region",
  "startedAt",
  "status",
  "updatedAt",
];

function isIso(value: unknown): boolean {
  return typeof value === "string" && new Date(value).toISOString() === value;
}

describe("GET /v1/sessions/{id}", () => {
  let world: TestWorld;
  let create: HttpHandler;
  let get: HttpHandler;

  before(async () => {
    world = await createTestWorld();
    create = createSessionHandler(world.runtime);
    get = getSessionHandler(world.runtime);
  });
  after(() => world.close());

  const createSession = async (key: string, body: unknown = {}) => {
    const res = await create(
      apiEvent({ method: "POST", path: "/v1/sessions", body, headers: { "X-BB-API-Key": key } }),
      ctx(),
    );
    expect(res.statusCode, res.body).to.equal(201);
    return JSON.parse(res.body);
  };

  const retrieve = (key: string, id: string, handler: HttpHandler = get): Promise<HttpResult> =>
    handler(sessionEvent("GET", key, id), ctx());

  /** A get handler whose clock runs `ms` ahead of the real one. */
  const getLater = (ms: number) => getSessionHandler({ ...world.runtime, now: () => Date.now() + ms });

  it("returns the Session with every field, ISO timestamps, a fresh connectUrl and no signingKey field", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const contextId = await world.addContext(project);
    const created = await createSession(key, {
      timeout: 600,
      keepAlive: true,
      userMetadata: { order: "42", nested: { a: 1 } },
      browserSettings: { context: { id: contextId, persist: true } },
      proxies: [{ type: "external", server: "http://proxy.example:8080", password: "hunter2-secret" }],
    });

    const res = await retrieve(key, created.id);
    expect(res.statusCode, res.body).to.equal(200);
    expect(res.headers["content-type"]).to.match(/^application\/json/);
    const body = JSON.parse(res.body);
    expect(Object.keys(body).sort()).to.deep.equal(
      [...SESSION_FIELDS, "contextId", "userMetadata", "connectUrl", "seleniumRemoteUrl"].sort(),
    );
    expect(body).to.include({
      id: created.id,
      projectId: project,
      status: "RUNNING",
      keepAlive: true,
      proxyBytes: 0,
      region: "us-west-2",
      contextId,
      createdAt: created.createdAt,
      startedAt: created.startedAt,
      expiresAt: created.expiresAt,
      updatedAt: created.updatedAt,
    });
    expect(body.userMetadata).to.deep.equal({ order: "42", nested: { a: 1 } });
    for (const field of ["createdAt", "updatedAt", "startedAt", "expiresAt"]) {
      expect(isIso(body[field]), `${field} = ${body[field]}`).to.equal(true);
    }
    expect(Date.parse(body.expiresAt) - Date.parse(body.startedAt)).to.be.within(600_000, 600_999);
    expect(body).to.not.have.property("endedAt");
    expect(res.body).to.not.include(created.signingKey);
    expect(res.body).to.not.include("hunter2-secret");
    expect(body).to.not.have.property("signingKey");
    expect(res.body).to.not.match(/principalId|proxies/);
    // A running session can be reconnected from its id alone: the URL carries a fresh connect token.
    const token = new URL(body.connectUrl).searchParams.get("signingKey")!;
    expect(body.connectUrl).to.equal(
      `wss://connect.test.example/v1/sessions/${created.id}/connect?signingKey=${token}`,
    );
    const claims = await verifySessionToken(token, world.tokenKeys, {
      issuer: "wallcrawler-api",
      audience: "wallcrawler-proxy",
      sessionId: created.id,
    });
    expect(claims.expiresAt).to.equal(Date.parse(created.expiresAt) / 1000);
  });

  it("omits contextId and userMetadata for a session created without them", async () => {
    const key = world.addKey(uniqueProject());
    const created = await createSession(key);
    const body = JSON.parse((await retrieve(key, created.id)).body);
    expect(Object.keys(body).sort()).to.deep.equal(
      [...SESSION_FIELDS, "connectUrl", "seleniumRemoteUrl"].sort(),
    );
  });

  it("finds the session by its id written in upper case", async () => {
    const key = world.addKey(uniqueProject());
    const created = await createSession(key);
    const res = await retrieve(key, created.id.toUpperCase());
    expect(res.statusCode, res.body).to.equal(200);
    expect(JSON.parse(res.body).id).to.equal(created.id);
  });

  it("reports TIMED_OUT once expiresAt has passed, with endedAt and updatedAt at expiresAt", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const created = await createSession(key, { timeout: 60 });

    const res = await retrieve(key, created.id, getLater(10 * 60_000));
    expect(res.statusCode, res.body).to.equal(200);
    const body = JSON.parse(res.body);
    expect(body.status).to.equal("TIMED_OUT");
    expect(body.endedAt).to.equal(created.expiresAt);
    expect(body.updatedAt).to.equal(created.expiresAt);
    // An ended session offers nothing to connect to.
    expect(body).to.not.have.property("connectUrl");

    // Derived on read: nothing was written, and at the real time the session still runs.
    const stored = await world.runtime.store.get(project, created.id);
    expect(stored?.status).to.equal("RUNNING");
    expect(JSON.parse((await retrieve(key, created.id)).body).status).to.equal("RUNNING");
  });

  it("reports RUNNING until the very moment before expiresAt", async () => {
    const key = world.addKey(uniqueProject());
    const created = await createSession(key, { timeout: 60 });
    const expiresAt = Date.parse(created.expiresAt);
    const at = (t: number) => getSessionHandler({ ...world.runtime, now: () => t });
    expect(JSON.parse((await retrieve(key, created.id, at(expiresAt - 1))).body).status).to.equal("RUNNING");
    expect(JSON.parse((await retrieve(key, created.id, at(expiresAt))).body).status).to.equal("TIMED_OUT");
  });

  it("reports ERROR with endedAt once the Proxy marks the session failed, even after expiresAt", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const created = await createSession(key, { timeout: 60 });
    const failedAt = Date.now() + 1000;
    const failed = await world.runtime.store.fail(project, created.id, "browser crashed", failedAt);
    expect(failed?.status).to.equal("ERROR");
    expect(failed?.errorReason).to.equal("browser crashed");

    const res = await retrieve(key, created.id);
    expect(res.statusCode, res.body).to.equal(200);
    const body = JSON.parse(res.body);
    expect(body.status).to.equal("ERROR");
    expect(body.endedAt).to.equal(new Date(failedAt).toISOString());
    expect(body.updatedAt).to.equal(new Date(failedAt).toISOString());
    expect(body).to.not.have.property("errorReason");

    const later = JSON.parse((await retrieve(key, created.id, getLater(10 * 60_000))).body);
    expect(later.status).to.equal("ERROR");
    expect(later.endedAt).to.equal(new Date(failedAt).toISOString());
  });

  it("answers 404 JSON for an id that does not exist", async () => {
    const key = world.addKey(uniqueProject());
    const id = randomUUID();
    const res = await retrieve(key, id);
    expect(res.statusCode).to.equal(404);
    const body = JSON.parse(res.body);
    expect(body).to.include({ statusCode: 404, error: "Not Found" });
    expect(body.message).to.include(id);
  });

  it("answers 404 for an id that is not a UUID", async () => {
    const key = world.addKey(uniqueProject());
    for (const id of ["not-a-uuid", "../../etc/passwd", "*", "x".repeat(500)]) {
      const res = await retrieve(key, id);
      expect(res.statusCode, id).to.equal(404);
      expect(JSON.parse(res.body)).to.include({ statusCode: 404, error: "Not Found" });
      expect(res.body.length, "the message does not echo a long id").to.be.below(200);
    }
  });

  it("answers another project's session exactly as it answers an id that never existed", async () => {
    const owner = world.addKey(uniqueProject("owner"));
    const other = world.addKey(uniqueProject("other"));
    const created = await createSession(owner, { userMetadata: { secret: "owner-only" } });
    await createSession(other);

    const foreign = await retrieve(other, created.id);
    const unknownId = randomUUID();
    const unknown = await retrieve(other, unknownId);

    expect(foreign.statusCode).to.equal(404);
    expect(unknown.statusCode).to.equal(404);
    expect(foreign.body).to.equal(unknown.body.replace(unknownId, created.id));
    const headerNames = (r: HttpResult) => Object.keys(r.headers).sort();
    expect(headerNames(foreign)).to.deep.equal(headerNames(unknown));
    expect(foreign.body).to.not.include("owner-only");

    // The owner still sees it.
    expect((await retrieve(owner, created.id)).statusCode).to.equal(200);
  });

  it("answers 401 without an API key and 401 for an unknown one", async () => {
    const key = world.addKey(uniqueProject());
    const created = await createSession(key);
    const res = await get(sessionEvent("GET", undefined, created.id), ctx());
    expect(res.statusCode).to.equal(401);
    expect((await retrieve("wc_" + "A".repeat(43), created.id)).statusCode).to.equal(401);
  });
});
