import { expect } from "chai";
import { createSessionHandler } from "../../handlers/create-session";
import { getSessionHandler } from "../../handlers/get-session";
import type { HttpHandler, HttpResult } from "../../lib/http";
import { keys, NOT_CONNECTED_REASON, QUEUE_GRANT_TTL_MS } from "../../lib/store";
import { upsertProject } from "../../local/secrets-file";
import {
  apiEvent,
  createTestWorld,
  ctx,
  sessionEvent,
  uniqueProject,
  type TestWorld,
} from "../support/fixtures";

/**
 * Waiting for a slot (`Prefer: wait=<s>`): first come, first served, the limit never exceeded,
 * nothing left behind by a waiter that leaves, and the per-project rate limits. Real Redis; every
 * wait ends on an event (a handover, an abort), never on a sleep.
 */
describe("waiting for a slot and rate limits", function () {
  this.timeout(120_000);
  let world: TestWorld;
  let create: HttpHandler;
  let get: HttpHandler;
  const redis = () => world.runtime.redis();

  before(async () => {
    world = await createTestWorld();
    create = createSessionHandler(world.runtime);
    get = getSessionHandler(world.runtime);
  });
  after(() => world.close());

  function post(
    key: string,
    headers: Record<string, string> = {},
    context: Record<string, unknown> = {},
  ): Promise<HttpResult> {
    const event = apiEvent({
      method: "POST",
      path: "/v1/sessions",
      body: {},
      headers: { "X-BB-API-Key": key, ...headers },
    });
    return create(event, { ...ctx(), ...context });
  }

  async function created(res: Promise<HttpResult> | HttpResult): Promise<{ id: string; createdAt: string }> {
    const answer = await res;
    expect(answer.statusCode, answer.body).to.equal(201);
    return JSON.parse(answer.body);
  }

  const queueLength = async (project: string) => (await redis()).zcard(keys.queue(project));

  /** Resolves once the project's queue holds `n` waiters (each waiter's script adds it before it blocks). */
  async function queued(project: string, n: number): Promise<void> {
    // Arrival is observed through Redis itself: the waiter's create script has run when it is there.
    for (;;) {
      if ((await queueLength(project)) >= n) return;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Every key of the project's queue that is still there. */
  async function queueKeys(project: string): Promise<string[]> {
    const found = await (await redis()).keys(`wc:{${project}}:*`);
    return found.filter((key) => /:(queue|grant)/.test(key)).sort();
  }

  /** The most sessions of the project that were live at one moment, from their records. */
  async function mostAtOnce(project: string): Promise<number> {
    const client = await redis();
    const ids = await client.zrange(keys.sessions(project), "0", "-1");
    const edges: [number, number][] = [];
    for (const id of ids) {
      const [startedAt, endedAt, expiresAt] = await client.hmget(
        keys.session(project, id),
        "startedAt",
        "endedAt",
        "expiresAt",
      );
      edges.push([Number(startedAt), 1], [Number(endedAt ?? expiresAt), -1]);
    }
    // At equal instants an end counts before a start: a slot handed over at once is not two.
    edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let live = 0;
    let most = 0;
    for (const [, change] of edges) most = Math.max(most, (live += change));
    return most;
  }

  it("hands 50 waiters their sessions in arrival order as slots free one by one, never over the limit", async () => {
    const project = uniqueProject("fifo");
    const key = world.addKey(project, { concurrency: 2 });
    const held = [await created(post(key)), await created(post(key))];
    const waiters: { index: number; startedAt: number; answer: Promise<HttpResult> }[] = [];
    for (let i = 0; i < 50; i++) {
      const startedAt = Date.now();
      waiters.push({ index: i, startedAt, answer: post(key, { Prefer: "wait=20" }) });
      // The next one arrives after this one is in the queue: arrival order is known.
      await queued(project, i + 1);
    }
    const order: number[] = [];
    const answered = new Set<number>();
    waiters.forEach((w) => void w.answer.then(() => answered.add(w.index)));
    for (let i = 0; i < 50; i++) {
      const release = held.shift()!;
      await world.runtime.store.release(project, release.id, Date.now());
      // Exactly one waiter is answered per freed slot: the one that arrived first.
      const next = await Promise.race(
        waiters.filter((w) => !order.includes(w.index)).map((w) => w.answer.then(() => w)),
      );
      order.push(next.index);
      const res = await next.answer;
      expect(res.headers["preference-applied"]).to.equal("wait=20");
      const session = await created(res);
      // It got its slot within its wait, by Redis's record of when it started.
      expect(Date.parse(session.createdAt)).to.be.at.most(next.startedAt + 20_000);
      held.push(session);
      expect(await (await redis()).zcount(keys.active(project), `(${Date.now()}`, "+inf")).to.equal(2);
    }
    expect(order).to.deep.equal([...Array(50).keys()]);
    expect(answered.size).to.equal(50);
    expect(await mostAtOnce(project)).to.equal(2);
    expect(await queueKeys(project)).to.deep.equal([]);
  });

  it("never gives a create without Prefer a slot that a waiter was promised", async () => {
    const project = uniqueProject("promised");
    const key = world.addKey(project, { concurrency: 1 });
    const first = await created(post(key));
    const waiter = post(key, { Prefer: "wait=20" });
    await queued(project, 1);
    // Freed and, in the same script, promised to the waiter: a caller that does not wait is refused.
    await world.runtime.store.release(project, first.id, Date.now());
    const impatient = await post(key);
    expect(impatient.statusCode, impatient.body).to.equal(429);
    expect(JSON.parse(impatient.body)).to.include({ limit: 1 });
    await created(waiter);
    expect(await mostAtOnce(project)).to.equal(1);
  });

  it("answers a waiter that gives up with the limit's 429, Retry-After and Preference-Applied, and leaves no queue entry", async () => {
    const project = uniqueProject("gives-up");
    const key = world.addKey(project, { concurrency: 1 });
    await created(post(key));
    const res = await post(key, { Prefer: "wait=1" });
    expect(res.statusCode, res.body).to.equal(429);
    expect(res.headers["preference-applied"]).to.equal("wait=1");
    expect(Number(res.headers["retry-after"])).to.be.greaterThan(0);
    expect(res.headers["x-ratelimit-limit"]).to.equal("1");
    const body = JSON.parse(res.body);
    expect(body).to.include({ limit: 1, running: 1 });
    expect(body.message).to.match(
      /at its limit of 1 concurrent session and no slot freed within the 1 s wait/,
    );
    expect(await queueKeys(project)).to.deep.equal([]);
  });

  it("caps the wait at MAX_QUEUE_WAIT_SECONDS and the function's remaining time, and refuses a malformed wait", async () => {
    const project = uniqueProject("cap");
    const key = world.addKey(project, { concurrency: 5 });
    const capped = await post(key, { Prefer: "wait=600" });
    expect(capped.headers["preference-applied"]).to.equal(`wait=${world.config.maxQueueWaitSeconds}`);
    const short = await post(
      key,
      { Prefer: "respond-async, wait=600" },
      { getRemainingTimeInMillis: () => 9_000 },
    );
    expect(short.headers["preference-applied"]).to.equal("wait=6");
    for (const bad of ["wait=soon", "wait=-1", "wait"]) {
      const res = await post(key, { Prefer: bad });
      expect(res.statusCode, bad).to.equal(400);
      expect(JSON.parse(res.body).message).to.match(/Prefer: wait must be a whole number of seconds/);
    }
    // Without a wait preference nothing changes: no Preference-Applied.
    expect((await post(key, { Prefer: "return=minimal" })).headers).to.not.have.property(
      "preference-applied",
    );
  });

  it("leaves nothing behind when waiting clients go away: the active count is exact afterwards", async () => {
    const project = uniqueProject("aborts");
    const key = world.addKey(project, { concurrency: 2 });
    const held = [await created(post(key)), await created(post(key))];
    const controllers: AbortController[] = [];
    const answers: Promise<HttpResult>[] = [];
    for (let i = 0; i < 10; i++) {
      const controller = new AbortController();
      controllers.push(controller);
      answers.push(post(key, { Prefer: "wait=20" }, { signal: controller.signal }));
      await queued(project, i + 1);
    }
    // The even ones leave while they wait.
    for (let i = 0; i < 10; i += 2) controllers[i].abort();
    for (let i = 0; i < 10; i += 2) expect((await answers[i]).statusCode).to.equal(408);
    expect(await queueLength(project)).to.equal(5);
    // Free both slots: the two first remaining waiters get them; the other three stay queued.
    for (const session of held) await world.runtime.store.release(project, session.id, Date.now());
    const got = [await created(answers[1]), await created(answers[3])];
    expect(await queueLength(project)).to.equal(3);
    // The rest leave too; then exactly the two sessions are live and the queue is gone.
    for (const i of [5, 7, 9]) controllers[i].abort();
    for (const i of [5, 7, 9]) expect((await answers[i]).statusCode).to.equal(408);
    const live = await (await redis()).zrangebyscore(keys.active(project), `(${Date.now()}`, "+inf");
    expect(live.sort()).to.deep.equal(got.map((s) => s.id).sort());
    expect(await queueKeys(project)).to.deep.equal([]);
  });

  it("gives a slot promised to a waiter that died to the next one once the promise lapses", async () => {
    const project = uniqueProject("dead-waiter");
    const key = world.addKey(project, { concurrency: 1 });
    const first = await created(post(key));
    // A waiter whose function was frozen or killed: queued by its script, never back to claim.
    const store = world.runtime.store;
    const now = Date.now();
    const ghost = await store.create({
      record: {
        ...(await store.get(project, first.id))!,
        id: "00000000-0000-4000-8000-00000000dead",
        createdAt: now,
      },
      limit: 1,
      now,
      retentionMs: 60_000,
      maxLifetimeMs: 3_600_000,
      wait: { until: now + 20_000, connectWindowMs: 30_000 },
    });
    expect(ghost.kind).to.equal("queued");
    const alive = post(key, { Prefer: "wait=20" });
    await queued(project, 2);
    await store.release(project, first.id, Date.now());
    // The ghost holds the promise for QUEUE_GRANT_TTL_MS, then the live waiter gets the slot.
    const session = await created(alive);
    expect(Date.parse(session.createdAt) - now).to.be.at.least(QUEUE_GRANT_TTL_MS - 1000);
    expect(await queueKeys(project)).to.deep.equal([]);
    expect(await mostAtOnce(project)).to.equal(1);
  });

  it("ends a session handed to a waiter when nobody connects by its connect deadline, and keeps one that was connected to", async () => {
    const project = uniqueProject("connect-by");
    const key = world.addKey(project, { concurrency: 2 });
    const held = [await created(post(key)), await created(post(key))];
    const a = post(key, { Prefer: "wait=20" });
    await queued(project, 1);
    const b = post(key, { Prefer: "wait=20" });
    await queued(project, 2);
    for (const session of held) await world.runtime.store.release(project, session.id, Date.now());
    const [ghost, connected] = [await created(a), await created(b)];
    const store = world.runtime.store;
    const ghostRecord = (await store.get(project, ghost.id))!;
    expect(ghostRecord.connectBy).to.be.a("number");
    expect(ghostRecord.connectBy! - Date.parse(ghost.createdAt)).to.equal(
      world.config.connectDeadlineSeconds * 1000,
    );
    expect(await store.markConnected(project, connected.id, Date.now())).to.equal(true);
    // Before the deadline the sweep leaves both; after it, only the one nobody connected to ends.
    expect(await store.sweepExpired(project, Date.now())).to.equal(0);
    expect(await store.sweepExpired(project, ghostRecord.connectBy! + 1)).to.equal(1);
    const ended = (await store.get(project, ghost.id))!;
    expect(ended.status).to.equal("ERROR");
    expect(ended.errorReason).to.equal(NOT_CONNECTED_REASON);
    expect((await store.get(project, connected.id))!.status).to.equal("RUNNING");
    expect((await store.get(project, connected.id))!.connectedAt).to.be.a("number");
    // A session made without waiting has no deadline.
    const plain = await created(post(key));
    expect((await store.get(project, plain.id))!.connectBy).to.equal(undefined);
  });

  it("refuses creates past the project's bucket at its configured rate, with a message unlike the limit's", async () => {
    const project = uniqueProject("create-rate");
    const key = world.addKey(project, { concurrency: 1000 });
    upsertProject(world.secretsFile, project, { createRate: 10, createBurst: 5 });
    let now = Date.parse("2030-01-01T00:00:00Z");
    const clocked = createSessionHandler({ ...world.runtime, now: () => now });
    const send = () =>
      clocked(
        apiEvent({ method: "POST", path: "/v1/sessions", body: {}, headers: { "X-BB-API-Key": key } }),
        ctx(),
      );
    const burst = await Promise.all(Array.from({ length: 20 }, send));
    expect(burst.filter((r) => r.statusCode === 201)).to.have.length(5);
    const refused = burst.filter((r) => r.statusCode === 429);
    expect(refused).to.have.length(15);
    for (const res of refused) {
      expect(JSON.parse(res.body).message).to.match(
        /faster than its rate limit of 10 a second \(bursts of 5\)/,
      );
      expect(res.headers["retry-after"]).to.equal("1");
      expect(JSON.parse(res.body)).to.not.have.property("limit");
    }
    // 300 ms later, exactly three more tokens (10 a second); after a long pause, never more than the burst.
    now += 300;
    const next = await Promise.all(Array.from({ length: 20 }, send));
    expect(next.filter((r) => r.statusCode === 201)).to.have.length(3);
    now += 60_000;
    const rested = await Promise.all(Array.from({ length: 20 }, send));
    expect(rested.filter((r) => r.statusCode === 201)).to.have.length(5);
  });

  it("admits creates at the configured rate in real time, within one token plus what one gap between requests refills", async () => {
    const project = uniqueProject("rate-real");
    const key = world.addKey(project, { concurrency: 100000 });
    const rate = 20;
    const burst = 5;
    upsertProject(world.secretsFile, project, { createRate: rate, createBurst: burst });
    let admitted = 0;
    let largestGap = 0;
    let last = Date.now();
    const start = last;
    while (Date.now() - start < 1500) {
      const res = await post(key);
      if (res.statusCode === 201) admitted++;
      else expect(res.statusCode, res.body).to.equal(429);
      const at = Date.now();
      largestGap = Math.max(largestGap, at - last);
      last = at;
    }
    const elapsedSeconds = (last - start) / 1000;
    // Asking without pause, the bucket admits its burst plus what refills; what it still holds at
    // the end is less than one token plus the refill of the longest pause between two requests.
    const expected = burst + rate * elapsedSeconds;
    const tolerance = 1 + (rate * largestGap) / 1000;
    expect(admitted).to.be.at.most(Math.ceil(expected + 1));
    expect(admitted).to.be.at.least(Math.floor(expected - tolerance - 1));
  });

  it("limits the other routes with their own looser bucket, and never asks Redis for a request without a valid key", async () => {
    const project = uniqueProject("other-rate");
    const key = world.addKey(project, { concurrency: 10 });
    const session = await created(post(key));
    upsertProject(world.secretsFile, project, { requestRate: 1, requestBurst: 3 });
    const now = Date.parse("2030-01-01T00:00:00Z");
    const clocked = getSessionHandler({ ...world.runtime, now: () => now });
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => clocked(sessionEvent("GET", key, session.id), ctx())),
    );
    expect(answers.map((r) => r.statusCode).sort()).to.deep.equal([200, 200, 200, 429, 429, 429]);
    const refused = answers.find((r) => r.statusCode === 429)!;
    expect(JSON.parse(refused.body).message).to.match(
      /sending requests faster than its rate limit of 1 a second/,
    );
    expect(refused.body).to.not.include(session.id);

    const client = await redis();
    const calls = async () => {
      const stats = await client.info("commandstats");
      return [...stats.matchAll(/cmdstat_(\w+):calls=(\d+)/g)]
        .filter(([, name]) => name !== "info")
        .reduce((sum, [, , n]) => sum + Number(n), 0);
    };
    const before = await calls();
    for (const bad of [undefined, "wc_" + "A".repeat(43), "not-a-key"]) {
      const res = await get(sessionEvent("GET", bad, session.id), ctx());
      expect(res.statusCode).to.equal(401);
    }
    expect(await calls()).to.equal(before);
  });
});
