import { randomUUID } from "node:crypto";
import { expect } from "chai";
import { createRedisClient, type RedisClient } from "../../lib/redis";
import type { SessionRecord } from "../../lib/session";
import {
  defineSessionScripts,
  END_SESSION_LUA,
  keys,
  SessionStore,
  usageMonth,
  type CreateRequest,
} from "../../lib/store";
import { uniqueProject } from "../support/fixtures";
import { sharedRedis } from "../support/redis";

const RETENTION_MS = 7 * 86400 * 1000;
const MAX_LIFETIME_MS = 21600 * 1000;
/** Mid-month (so no session crosses a month boundary), and in the future: records expire retention after expiresAt. */
const T0 = Date.UTC(2030, 5, 15, 12, 0, 0);

function client(url: string): RedisClient {
  const made = createRedisClient({ url, cluster: false, connectTimeoutMs: 500, commandTimeoutMs: 5000 });
  defineSessionScripts(made);
  return made;
}

function record(projectId: string, startedAt: number, timeoutSeconds: number): SessionRecord {
  return {
    id: randomUUID(),
    projectId,
    principalId: "prn_test",
    status: "RUNNING",
    createdAt: startedAt,
    updatedAt: startedAt,
    startedAt,
    expiresAt: startedAt + timeoutSeconds * 1000,
    timeoutSeconds,
    keepAlive: false,
    region: "us-west-2",
    proxyBytes: 0,
  };
}

function request(rec: SessionRecord): CreateRequest {
  return {
    record: rec,
    limit: 100_000,
    now: rec.createdAt,
    retentionMs: RETENTION_MS,
    maxLifetimeMs: MAX_LIFETIME_MS,
  };
}

/** Browserbase's rule: whole minutes, rounded up, at least one. */
const minutesOf = (ms: number) => Math.max(1, Math.ceil(ms / 60_000));

describe("usage: every ended session counted exactly once", function () {
  this.timeout(60_000);
  let redis: RedisClient;
  let store: SessionStore;
  const connections: SessionStore[] = [];
  const clients: RedisClient[] = [];

  before(async () => {
    const server = await sharedRedis();
    redis = client(server.url);
    store = new SessionStore(async () => redis, { commandTimeoutMs: 5000 });
    for (let i = 0; i < 6; i++) {
      const c = client(server.url);
      clients.push(c);
      connections.push(new SessionStore(async () => c, { commandTimeoutMs: 5000 }));
    }
  });
  after(() => {
    redis.disconnect();
    for (const c of clients) c.disconnect();
  });

  it("sums the minutes of sessions released, crashed and timed out, with the three racing on six connections", async () => {
    const project = uniqueProject("usage");
    const released: { rec: SessionRecord; at: number }[] = [];
    const crashed: { rec: SessionRecord; at: number }[] = [];
    const timedOut: SessionRecord[] = [];
    for (let i = 0; i < 30; i++) {
      // Long sessions ended early by a release or a crash; short ones that time out.
      const start = T0 + i * 100;
      const rel = record(project, start, 600);
      const crash = record(project, start + 50, 600);
      const short = record(project, start + 25, 60 + i);
      for (const rec of [rel, crash, short])
        expect((await store.create(request(rec))).kind).to.equal("created");
      released.push({ rec: rel, at: start + 1_000 + i * 7_919 });
      crashed.push({ rec: crash, at: start + 50 + 500 + i * 13_001 });
      timedOut.push(short);
    }
    // Past every short session's expiry, before any long one's.
    const sweepAt = T0 + 300_000;
    const on = (i: number) => connections[i % connections.length];
    const work: Promise<unknown>[] = [];
    released.forEach(({ rec, at }, i) => {
      work.push(on(i).release(project, rec.id, at));
      work.push(on(i + 1).release(project, rec.id, at + 5)); // a client's retry: must not count twice
    });
    crashed.forEach(({ rec, at }, i) => {
      work.push(on(i + 2).fail(project, rec.id, "browser crashed", at));
      work.push(on(i + 3).release(project, rec.id, at + 1)); // the client's release loses the race or wins it
    });
    timedOut.forEach((rec, i) => {
      // A late release finds it expired: it ends it as TIMED_OUT, racing the sweeps.
      work.push(on(i + 4).release(project, rec.id, sweepAt));
    });
    for (let i = 0; i < 6; i++) work.push(on(i).sweepExpired(project, sweepAt));
    await Promise.all(work);

    let expected = 0;
    for (const { rec, at } of released) {
      const got = (await store.get(project, rec.id))!;
      expect(got.status).to.equal("COMPLETED");
      expect(got.endedAt).to.be.oneOf([at, at + 5]); // whichever of the two releases ran first
      expected += minutesOf(got.endedAt! - rec.startedAt);
    }
    for (const { rec, at } of crashed) {
      const got = (await store.get(project, rec.id))!;
      expect(["ERROR", "COMPLETED"]).to.include(got.status);
      expect(got.endedAt).to.be.oneOf([at, at + 1]);
      expected += minutesOf(got.endedAt! - rec.startedAt);
    }
    for (const rec of timedOut) {
      const got = (await store.get(project, rec.id))!;
      expect(got.status).to.equal("TIMED_OUT");
      expect(got.endedAt).to.equal(rec.expiresAt);
      expected += minutesOf(rec.expiresAt - rec.startedAt);
    }
    const usage = await store.usage(project, usageMonth(T0));
    expect(usage.sessions).to.equal(90);
    expect(usage.browserMinutes).to.equal(expected);
    expect(await redis.zcard(keys.active(project))).to.equal(0);
    // Ending again changes nothing.
    await store.sweepExpired(project, sweepAt + 600_000);
    await store.release(project, released[0].rec.id, sweepAt + 700_000);
    expect(await store.usage(project, usageMonth(T0))).to.deep.equal(usage);
  });

  it("rounds each session up to whole minutes, with a one-minute minimum", async () => {
    const project = uniqueProject("usage");
    const cases = [
      { lasted: 1_000, minutes: 1 },
      { lasted: 60_000, minutes: 1 },
      { lasted: 60_001, minutes: 2 },
      { lasted: 120_000, minutes: 2 },
      { lasted: 599_999, minutes: 10 },
    ];
    for (const { lasted } of cases) {
      const rec = record(project, T0, 900);
      await store.create(request(rec));
      await store.release(project, rec.id, T0 + lasted);
    }
    const total = cases.reduce((sum, c) => sum + c.minutes, 0);
    expect((await store.usage(project, usageMonth(T0))).browserMinutes).to.equal(total);
  });

  it("adds the proxyBytes the Proxy wrote into the record when the session ends", async () => {
    const project = uniqueProject("usage");
    const rec = record(project, T0, 300);
    await store.create(request(rec));
    await redis.hincrby(keys.session(project, rec.id), "proxyBytes", 12_345);
    await redis.hincrby(keys.session(project, rec.id), "proxyBytes", 655);
    await store.release(project, rec.id, T0 + 30_000);
    expect(await store.usage(project, usageMonth(T0))).to.deep.equal({
      browserMinutes: 1,
      proxyBytes: 13_000,
      sessions: 1,
    });
  });

  it("counts a session in the UTC month it ended in", async () => {
    const project = uniqueProject("usage");
    const newYear = Date.UTC(2031, 0, 1);
    const late = record(project, newYear - 120_000, 900);
    const later = record(project, newYear - 60_000, 900);
    await store.create(request(late));
    await store.create(request(later));
    await store.release(project, late.id, newYear - 1);
    await store.release(project, later.id, newYear);
    expect((await store.usage(project, "2030-12")).browserMinutes).to.equal(2);
    expect((await store.usage(project, "2031-01")).browserMinutes).to.equal(1);
    expect(await redis.pttl(keys.usage(project, "2031-01"))).to.be.greaterThan(390 * 86400 * 1000);
  });

  it("names months in Lua exactly as JavaScript's Date does, leap years and boundaries included", async () => {
    const instants: number[] = [
      0,
      951_782_400_000 - 1,
      951_782_400_000,
      Date.UTC(2100, 1, 28, 23, 59, 59, 999),
    ];
    for (let year = 1970; year <= 2200; year += 7) {
      for (let month = 0; month < 12; month++) {
        const first = Date.UTC(year, month, 1);
        instants.push(first, first - 1, first + 86_399_999);
      }
    }
    for (let i = 0; i < 500; i++) instants.push(Math.floor(Math.random() * Date.UTC(2300, 0, 1)));
    const lua = `${END_SESSION_LUA}
local out = {}
for i, ms in ipairs(ARGV) do out[i] = usage_month(tonumber(ms)) end
return out`;
    const months = (await redis.eval(lua, 0, ...instants.map(String))) as string[];
    expect(months).to.deep.equal(instants.map(usageMonth));
  });

  it("frees a timed-out session's slot in the same step that counts it", async () => {
    const project = uniqueProject("usage");
    const first = record(project, T0, 60);
    expect((await store.create({ ...request(first), limit: 1 })).kind).to.equal("created");
    const second = record(project, T0 + 61_000, 60);
    // The create itself ends the expired session, counts it, and takes the slot.
    expect((await store.create({ ...request(second), limit: 1 })).kind).to.equal("created");
    expect((await store.get(project, first.id))!.status).to.equal("TIMED_OUT");
    expect((await store.usage(project, usageMonth(T0))).browserMinutes).to.equal(1);
  });
});
