import { randomUUID } from "node:crypto";
import { expect } from "chai";
import { Redis } from "ioredis";
import { createSessionHandler } from "../../handlers/create-session";
import { getSessionHandler } from "../../handlers/get-session";
import { updateSessionHandler } from "../../handlers/update-session";
import type { HttpHandler, HttpResult } from "../../lib/http";
import { keys, SESSION_EVENTS_CHANNEL } from "../../lib/store";
import {
  apiEvent,
  createTestWorld,
  ctx,
  sessionEvent,
  uniqueProject,
  type TestWorld,
} from "../support/fixtures";
import { sharedRedis } from "../support/redis";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("POST /v1/sessions/{id}", () => {
  let world: TestWorld;
  let create: HttpHandler;
  let update: HttpHandler;
  let get: HttpHandler;
  let subscriber: Redis;
  /** Every event published on the session-events channel since the subscription began. */
  const events: Record<string, unknown>[] = [];

  before(async () => {
    world = await createTestWorld();
    create = createSessionHandler(world.runtime);
    update = updateSessionHandler(world.runtime);
    get = getSessionHandler(world.runtime);
    subscriber = new Redis((await sharedRedis()).url, { lazyConnect: true });
    await subscriber.connect();
    subscriber.on("message", (channel: string, message: string) => {
      if (channel === SESSION_EVENTS_CHANNEL) events.push(JSON.parse(message));
    });
    await subscriber.subscribe(SESSION_EVENTS_CHANNEL);
  });
  after(async () => {
    subscriber.disconnect();
    await world.close();
  });

  const eventsFor = (sessionId: string) => events.filter((e) => e.sessionId === sessionId);

  /**
   * The session's events once every event published so far has arrived: a marker published
   * after the operation reaches the subscriber after anything the operation published.
   */
  const settledEventsFor = async (sessionId: string) => {
    const marker = randomUUID();
    await (await world.runtime.redis()).publish(SESSION_EVENTS_CHANNEL, JSON.stringify({ marker }));
    for (let i = 0; i < 400 && !events.some((e) => e.marker === marker); i++) await sleep(5);
    expect(
      events.some((e) => e.marker === marker),
      "the marker event arrived",
    ).to.equal(true);
    return eventsFor(sessionId);
  };

  const createRaw = (key: string, body: unknown = {}) =>
    create(apiEvent({ method: "POST", path: "/v1/sessions", body, headers: { "X-BB-API-Key": key } }), ctx());

  const createSession = async (key: string, body: unknown = {}) => {
    const res = await createRaw(key, body);
    expect(res.statusCode, res.body).to.equal(201);
    return JSON.parse(res.body);
  };

  const release = (key: string, id: string, handler: HttpHandler = update): Promise<HttpResult> =>
    handler(sessionEvent("POST", key, id, { body: { status: "REQUEST_RELEASE" } }), ctx());

  const statusOf = async (key: string, id: string) => {
    const res = await get(sessionEvent("GET", key, id), ctx());
    return JSON.parse(res.body).status;
  };

  it("ends the session: COMPLETED, with endedAt and updatedAt at the release time", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const created = await createSession(key, { timeout: 600, userMetadata: { run: "1" } });
    const releasedAt = Date.now() + 5000;

    const res = await release(
      key,
      created.id,
      updateSessionHandler({ ...world.runtime, now: () => releasedAt }),
    );
    expect(res.statusCode, res.body).to.equal(200);
    const body = JSON.parse(res.body);
    expect(body).to.include({ id: created.id, projectId: project, status: "COMPLETED" });
    expect(body.endedAt).to.equal(new Date(releasedAt).toISOString());
    expect(body.updatedAt).to.equal(new Date(releasedAt).toISOString());
    expect(body.createdAt).to.equal(created.createdAt);
    expect(body.expiresAt).to.equal(created.expiresAt);
    expect(body.userMetadata).to.deep.equal({ run: "1" });
    expect(body).to.not.have.property("signingKey");

    const stored = await world.runtime.store.get(project, created.id);
    expect(stored).to.include({ status: "COMPLETED", endedAt: releasedAt, updatedAt: releasedAt });
    expect(await statusOf(key, created.id)).to.equal("COMPLETED");
    // Still COMPLETED (not TIMED_OUT) once expiresAt has passed.
    const later = getSessionHandler({ ...world.runtime, now: () => Date.now() + 3600_000 });
    const afterExpiry = await later(sessionEvent("GET", key, created.id), ctx());
    expect(JSON.parse(afterExpiry.body)).to.include({ status: "COMPLETED", endedAt: body.endedAt });
  });

  it("frees the session's slot at once, so a create at the limit then succeeds", async () => {
    const project = uniqueProject();
    const key = world.addKey(project, { concurrency: 1 });
    const first = await createSession(key, { timeout: 3600 });
    expect((await createRaw(key)).statusCode).to.equal(429);

    expect((await release(key, first.id)).statusCode).to.equal(200);
    const redis = await world.runtime.redis();
    expect(await redis.zscore(keys.active(project), first.id)).to.equal(null);
    expect(await world.runtime.store.activeCount(project, Date.now())).to.equal(0);

    const second = await createRaw(key);
    expect(second.statusCode, second.body).to.equal(201);
  });

  it("publishes one released event with the session and project id on wc:session-events", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const created = await createSession(key);
    expect(SESSION_EVENTS_CHANNEL).to.equal("wc:session-events");

    expect((await release(key, created.id)).statusCode).to.equal(200);
    const published = await settledEventsFor(created.id);
    expect(published).to.have.length(1);
    expect(published[0]).to.include({ type: "released", sessionId: created.id, projectId: project });
    expect(published[0].at).to.be.a("number");
  });

  it("answers a second release with 200 and the session unchanged, publishing nothing", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const created = await createSession(key);
    const first = await release(key, created.id);
    expect(first.statusCode).to.equal(200);
    await settledEventsFor(created.id);

    const again = await release(
      key,
      created.id,
      updateSessionHandler({ ...world.runtime, now: () => Date.now() + 60_000 }),
    );
    expect(again.statusCode, again.body).to.equal(200);
    expect(JSON.parse(again.body)).to.deep.equal(JSON.parse(first.body));
    expect(await settledEventsFor(created.id)).to.have.length(1);
  });

  it("answers a release of a timed-out session with 200 and TIMED_OUT, publishing the timeout once", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const created = await createSession(key, { timeout: 60 });
    const later = updateSessionHandler({ ...world.runtime, now: () => Date.now() + 10 * 60_000 });
    const res = await release(key, created.id, later);
    expect(res.statusCode, res.body).to.equal(200);
    expect(JSON.parse(res.body)).to.include({ status: "TIMED_OUT", endedAt: created.expiresAt });
    // The release found the session expired before the sweep did: it ended it as TIMED_OUT.
    const published = await settledEventsFor(created.id);
    expect(published).to.have.length(1);
    expect(published[0]).to.include({ type: "timed_out", at: Date.parse(created.expiresAt) });
    const again = await release(key, created.id, later);
    expect(JSON.parse(again.body)).to.include({ status: "TIMED_OUT", endedAt: created.expiresAt });
    expect(await settledEventsFor(created.id)).to.have.length(1);
  });

  it("refuses any body other than a release with 400, and leaves the session RUNNING", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const created = await createSession(key);
    const cases: [string, { body?: unknown; rawBody?: string }, RegExp][] = [
      ["another status", { body: { status: "COMPLETED" } }, /status/],
      ["a lower-case status", { body: { status: "request_release" } }, /status/],
      [
        "an unknown field",
        { body: { status: "REQUEST_RELEASE", keepAlive: true } },
        /unknown field keepAlive/,
      ],
      ["an empty object", { body: {} }, /status/],
      ["no body at all", {}, /status/],
      ["a JSON array", { rawBody: "[]" }, /JSON object/],
      ["malformed JSON", { rawBody: '{"status": ' }, /not valid JSON/],
      ["a status that is not a string", { body: { status: 1 } }, /status/],
    ];
    for (const [what, options, message] of cases) {
      const res = await update(sessionEvent("POST", key, created.id, options), ctx());
      expect(res.statusCode, `${what}: ${res.body}`).to.equal(400);
      const body = JSON.parse(res.body);
      expect(body, what).to.include({ statusCode: 400, error: "Bad Request" });
      expect(body.message, what).to.match(message);
    }
    expect(await statusOf(key, created.id)).to.equal("RUNNING");
    expect(await settledEventsFor(created.id)).to.have.length(0);
  });

  it("answers 400 when the body's projectId is not the key's project, and releases when it is", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const created = await createSession(key);
    const mismatch = await update(
      sessionEvent("POST", key, created.id, {
        body: { status: "REQUEST_RELEASE", projectId: uniqueProject() },
      }),
      ctx(),
    );
    expect(mismatch.statusCode, mismatch.body).to.equal(400);
    expect(JSON.parse(mismatch.body).message).to.include("projectId");
    expect(await statusOf(key, created.id)).to.equal("RUNNING");

    const match = await update(
      sessionEvent("POST", key, created.id, { body: { status: "REQUEST_RELEASE", projectId: project } }),
      ctx(),
    );
    expect(match.statusCode, match.body).to.equal(200);
    expect(JSON.parse(match.body).status).to.equal("COMPLETED");
  });

  it("answers another project's key with the same 404 as an unknown id, and the session keeps running", async () => {
    const owner = uniqueProject("owner");
    const ownerKey = world.addKey(owner);
    const otherKey = world.addKey(uniqueProject("other"));
    const created = await createSession(ownerKey);

    const foreign = await release(otherKey, created.id);
    expect(foreign.statusCode).to.equal(404);
    const unknownId = randomUUID();
    const unknown = await release(otherKey, unknownId);
    expect(unknown.statusCode).to.equal(404);
    expect(foreign.body).to.equal(unknown.body.replace(unknownId, created.id));

    expect(await statusOf(ownerKey, created.id)).to.equal("RUNNING");
    const redis = await world.runtime.redis();
    expect(await redis.zscore(keys.active(owner), created.id)).to.not.equal(null);
    expect(await settledEventsFor(created.id)).to.have.length(0);
  });

  it("answers 404 for an id that is not a UUID", async () => {
    const key = world.addKey(uniqueProject());
    const res = await release(key, "not-a-session");
    expect(res.statusCode).to.equal(404);
    expect(JSON.parse(res.body)).to.include({ statusCode: 404, error: "Not Found" });
  });
});
