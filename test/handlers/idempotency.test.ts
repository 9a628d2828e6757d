import { expect } from "chai";
import { randomUUID } from "node:crypto";
import { createSessionHandler } from "../../handlers/create-session";
import type { HttpHandler, HttpResult } from "../../lib/http";
import { keys } from "../../lib/store";
import { apiEvent, createTestWorld, ctx, uniqueProject, type TestWorld } from "../support/fixtures";

describe("POST /v1/sessions with an Idempotency-Key", () => {
  let world: TestWorld;
  let handler: HttpHandler;

  before(async () => {
    world = await createTestWorld();
    handler = createSessionHandler(world.runtime);
  });
  after(() => world.close());

  const create = (key: string, body: unknown, idempotencyKey?: string): Promise<HttpResult> =>
    handler(
      apiEvent({
        method: "POST",
        path: "/v1/sessions",
        body,
        headers:
          idempotencyKey === undefined
            ? { "X-BB-API-Key": key }
            : { "X-BB-API-Key": key, "Idempotency-Key": idempotencyKey },
      }),
      ctx(),
    );

  const counts = async (project: string) => {
    const redis = await world.runtime.redis();
    return {
      active: await redis.zcard(keys.active(project)),
      listed: await redis.zcard(keys.sessions(project)),
    };
  };

  const release = (project: string, id: string) => world.runtime.store.release(project, id, Date.now());

  it("answers a retry with the same key and body with the first session, marked replayed, using no second slot", async () => {
    const project = uniqueProject();
    // A limit of one: a second slot would be refused with 429.
    const key = world.addKey(project, { concurrency: 1 });
    const idem = randomUUID();
    const body = { timeout: 300, userMetadata: { order: "42", tags: ["a", "b"] } };

    const first = await create(key, body, idem);
    expect(first.statusCode, first.body).to.equal(201);
    expect(first.headers).to.not.have.property("idempotent-replayed");
    const again = await create(key, body, idem);
    expect(again.statusCode, again.body).to.equal(201);
    expect(again.headers["idempotent-replayed"]).to.equal("true");

    const a = JSON.parse(first.body);
    const b = JSON.parse(again.body);
    expect(b.id).to.equal(a.id);
    for (const field of ["createdAt", "expiresAt", "startedAt", "projectId", "status", "connectUrl"]) {
      if (field === "connectUrl") {
        expect(b.connectUrl.split("?")[0]).to.equal(a.connectUrl.split("?")[0]);
      } else {
        expect(b[field], field).to.equal(a[field]);
      }
    }
    expect(b.userMetadata).to.deep.equal(body.userMetadata);
    expect(b.signingKey).to.be.a("string").with.length.above(100);
    expect(await counts(project)).to.deep.equal({ active: 1, listed: 1 });
  });

  it("answers a replay of a session that has since ended as it is, without connect credentials", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const idem = randomUUID();
    const first = JSON.parse((await create(key, {}, idem)).body);
    await release(project, first.id);
    const again = await create(key, {}, idem);
    expect(again.statusCode, again.body).to.equal(201);
    expect(again.headers["idempotent-replayed"]).to.equal("true");
    const body = JSON.parse(again.body);
    expect(body).to.include({ id: first.id, status: "COMPLETED" });
    expect(body).to.not.have.any.keys("connectUrl", "signingKey", "seleniumRemoteUrl");
  });

  it("treats a retry whose JSON has its keys in another order as the same body", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const idem = randomUUID();
    const first = await create(key, { timeout: 120, userMetadata: { a: 1, b: 2 } }, idem);
    const again = await create(key, { userMetadata: { b: 2, a: 1 }, timeout: 120 }, idem);
    expect(again.statusCode, again.body).to.equal(201);
    expect(JSON.parse(again.body).id).to.equal(JSON.parse(first.body).id);
    expect(again.headers["idempotent-replayed"]).to.equal("true");
  });

  it("answers the same key with a different body with 409 and x-should-retry false", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const idem = randomUUID();
    const first = await create(key, { timeout: 120 }, idem);
    expect(first.statusCode).to.equal(201);

    const conflict = await create(key, { timeout: 180 }, idem);
    expect(conflict.statusCode, conflict.body).to.equal(409);
    expect(conflict.headers["x-should-retry"]).to.equal("false");
    const body = JSON.parse(conflict.body);
    expect(body).to.include({ statusCode: 409, error: "Conflict" });
    expect(body.message).to.include("Idempotency-Key");
    expect(await counts(project)).to.deep.equal({ active: 1, listed: 1 });

    // The original body still replays after the conflict.
    expect(JSON.parse((await create(key, { timeout: 120 }, idem)).body).id).to.equal(
      JSON.parse(first.body).id,
    );
  });

  it("creates exactly one session for 50 concurrent requests with one key", async () => {
    const project = uniqueProject();
    const key = world.addKey(project, { concurrency: 100 });
    const idem = randomUUID();
    const body = { timeout: 600, userMetadata: { job: "burst" } };

    const results = await Promise.all(Array.from({ length: 50 }, () => create(key, body, idem)));
    for (const res of results) expect(res.statusCode, res.body).to.equal(201);
    const ids = new Set(results.map((res) => JSON.parse(res.body).id));
    expect(ids.size).to.equal(1);
    const replayed = results.filter((res) => res.headers["idempotent-replayed"] === "true");
    expect(replayed).to.have.length(49);
    const redis = await world.runtime.redis();
    expect(await redis.zrange(keys.active(project), 0, "-1")).to.deep.equal([...ids]);
    expect(await counts(project)).to.deep.equal({ active: 1, listed: 1 });
  });

  it("creates a different session for each different key", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const body = { timeout: 120 };
    const a = await create(key, body, "key-a");
    const b = await create(key, body, "key-b");
    expect(a.statusCode).to.equal(201);
    expect(b.statusCode).to.equal(201);
    expect(b.headers).to.not.have.property("idempotent-replayed");
    expect(JSON.parse(a.body).id).to.not.equal(JSON.parse(b.body).id);
    expect(await counts(project)).to.deep.equal({ active: 2, listed: 2 });
  });

  it("keeps keys apart between projects", async () => {
    const projectA = uniqueProject("a");
    const projectB = uniqueProject("b");
    const keyA = world.addKey(projectA);
    const keyB = world.addKey(projectB);
    const idem = randomUUID();
    const a = await create(keyA, {}, idem);
    const b = await create(keyB, {}, idem);
    expect(b.statusCode, b.body).to.equal(201);
    expect(b.headers).to.not.have.property("idempotent-replayed");
    const sessionB = JSON.parse(b.body);
    expect(sessionB.id).to.not.equal(JSON.parse(a.body).id);
    expect(sessionB.projectId).to.equal(projectB);
    // A retry under B's key replays B's own session.
    const retry = await create(keyB, {}, idem);
    expect(retry.headers["idempotent-replayed"]).to.equal("true");
    expect(JSON.parse(retry.body).id).to.equal(sessionB.id);
  });

  it("refuses an Idempotency-Key that is empty, longer than 255 characters or contains a space", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    for (const idem of ["", "k".repeat(256), "has space", "tab\there", "caf\u00e9"]) {
      const res = await create(key, {}, idem);
      expect(res.statusCode, JSON.stringify(idem)).to.equal(400);
      const body = JSON.parse(res.body);
      expect(body).to.include({ statusCode: 400, error: "Bad Request" });
      expect(body.message).to.include("Idempotency-Key");
    }
    expect(await counts(project)).to.deep.equal({ active: 0, listed: 0 });
    const longest = await create(key, {}, "k".repeat(255));
    expect(longest.statusCode, longest.body).to.equal(201);
  });

  it("does not spend the key on a create refused for the concurrency limit", async () => {
    const project = uniqueProject();
    const key = world.addKey(project, { concurrency: 1 });
    const blocker = await create(key, { timeout: 3600 });
    expect(blocker.statusCode).to.equal(201);

    const idem = randomUUID();
    const refused = await create(key, { timeout: 120 }, idem);
    expect(refused.statusCode, refused.body).to.equal(429);
    expect(refused.headers["retry-after"]).to.match(/^\d+$/);

    await release(project, JSON.parse(blocker.body).id);
    const retried = await create(key, { timeout: 120 }, idem);
    expect(retried.statusCode, retried.body).to.equal(201);
    expect(retried.headers).to.not.have.property("idempotent-replayed");
    const again = await create(key, { timeout: 120 }, idem);
    expect(again.headers["idempotent-replayed"]).to.equal("true");
    expect(JSON.parse(again.body).id).to.equal(JSON.parse(retried.body).id);
  });

  it("does not spend the key on a create refused as a bad request", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const idem = randomUUID();
    expect((await create(key, { timeout: 5 }, idem)).statusCode).to.equal(400);
    const ok = await create(key, { timeout: 120 }, idem);
    expect(ok.statusCode, ok.body).to.equal(201);
    expect(ok.headers).to.not.have.property("idempotent-replayed");
  });
});
