import { randomUUID } from "node:crypto";
import { expect } from "chai";
import { DependencyError } from "../../lib/errors";
import { createRedisClient, type RedisClient } from "../../lib/redis";
import type { SessionRecord } from "../../lib/session";
import {
  defineSessionScripts,
  fieldsToRecord,
  keys,
  recordToFields,
  SessionStore,
  type CreateOutcome,
  type CreateRequest,
} from "../../lib/store";
import { uniqueProject } from "../support/fixtures";
import { sharedRedis } from "../support/redis";

const RETENTION_MS = 7 * 86400 * 1000;
const MAX_LIFETIME_MS = 21600 * 1000;

function client(url: string): RedisClient {
  const made = createRedisClient({ url, cluster: false, connectTimeoutMs: 500, commandTimeoutMs: 2000 });
  defineSessionScripts(made);
  return made;
}

function record(projectId: string, now: number, timeoutSeconds = 300): SessionRecord {
  return {
    id: randomUUID(),
    projectId,
    principalId: "prn_test",
    status: "RUNNING",
    createdAt: now,
    updatedAt: now,
    startedAt: now,
    expiresAt: now + timeoutSeconds * 1000,
    timeoutSeconds,
    keepAlive: false,
    region: "us-west-2",
    proxyBytes: 0,
  };
}

function request(rec: SessionRecord, limit: number, now = rec.createdAt): CreateRequest {
  return { record: rec, limit, now, retentionMs: RETENTION_MS, maxLifetimeMs: MAX_LIFETIME_MS };
}

/** The part of a key Redis Cluster hashes: the first non-empty `{...}` section, else the whole key. */
function hashTag(key: string): string {
  const open = key.indexOf("{");
  if (open === -1) return key;
  const close = key.indexOf("}", open + 1);
  if (close === -1 || close === open + 1) return key;
  return key.slice(open + 1, close);
}

describe("SessionStore", () => {
  let redis: RedisClient;
  let store: SessionStore;
  const extra: RedisClient[] = [];

  before(async () => {
    const server = await sharedRedis();
    redis = client(server.url);
    store = new SessionStore(async () => redis);
    for (let i = 0; i < 8; i++) extra.push(client(server.url));
  });
  after(() => {
    redis.disconnect();
    for (const c of extra) c.disconnect();
  });

  describe("concurrency limit", () => {
    it("gives exactly 5 sessions to 100 concurrent creates against a limit of 5", async () => {
      const project = uniqueProject();
      const now = Date.now();
      // Several connections, so the scripts really arrive interleaved at the server.
      const stores = extra.map((c) => new SessionStore(async () => c));
      const records = Array.from({ length: 100 }, () => record(project, now));
      const outcomes = await Promise.all(
        records.map((rec, i) => stores[i % stores.length].create(request(rec, 5))),
      );
      const created = outcomes.filter((o) => o.kind === "created");
      const limited = outcomes.filter((o) => o.kind === "limited");
      expect(created).to.have.length(5);
      expect(limited).to.have.length(95);
      expect(created.map((o) => (o as { liveCount: number }).liveCount).sort()).to.deep.equal([
        1, 2, 3, 4, 5,
      ]);
      for (const o of limited) expect((o as { liveCount: number }).liveCount).to.equal(5);

      expect(await redis.zcard(keys.active(project))).to.equal(5);
      expect(await redis.zcard(keys.sessions(project))).to.equal(5);
      expect(await store.activeCount(project, now)).to.equal(5);
      const createdIds = records.filter((_, i) => outcomes[i].kind === "created").map((r) => r.id);
      expect(await redis.zrange(keys.active(project), "0", "-1")).to.have.members(createdIds);
      const existing = await Promise.all(records.map((r) => redis.exists(keys.session(project, r.id))));
      expect(
        existing.reduce((a, b) => a + b, 0),
        "records written",
      ).to.equal(5);
    });

    it("keeps at most maxRetained sessions per project, dropping the oldest ended ones and never a live one", async () => {
      const project = uniqueProject();
      const base = Date.now();
      const make = (offset: number) => record(project, base + offset);
      // The oldest session stays live; the next four end.
      const live = make(0);
      await store.create({ ...request(live, 100), maxRetained: 3 });
      const ended: SessionRecord[] = [];
      for (let i = 1; i <= 4; i++) {
        const rec = make(i);
        expect((await store.create({ ...request(rec, 100), maxRetained: 3 })).kind).to.equal("created");
        await store.release(project, rec.id, rec.createdAt);
        ended.push(rec);
      }
      // Each create dropped the oldest ended session beyond 3: the live one and the two newest remain.
      const listed = await redis.zrange(keys.sessions(project), "0", "-1");
      expect(listed).to.have.members([live.id, ended[2].id, ended[3].id]);
      for (const gone of ended.slice(0, 2))
        expect(await redis.exists(keys.session(project, gone.id))).to.equal(0);
      expect(await redis.exists(keys.session(project, live.id))).to.equal(1);
      expect(await redis.zscore(keys.active(project), live.id)).to.not.equal(null);
    });

    it("past maxRetained with every listed session live, a create looks at none of them", async () => {
      const project = uniqueProject();
      const base = Date.now();
      for (let i = 0; i < 20; i++)
        await store.create({ ...request(record(project, base + i), 100), maxRetained: 3 });
      const zscoreCalls = async () =>
        Number(/cmdstat_zscore:calls=(\d+)/.exec(await redis.info("commandstats"))?.[1] ?? 0);
      const before = await zscoreCalls();
      const last = record(project, base + 20);
      expect((await store.create({ ...request(last, 100), maxRetained: 3 })).kind).to.equal("created");
      // Nothing can go (a live session is never dropped), so no list entry is checked against active.
      expect((await zscoreCalls()) - before).to.equal(0);
      expect(await redis.zcard(keys.sessions(project))).to.equal(21);
      expect(await redis.zcard(keys.active(project))).to.equal(21);
    });

    it("undoes a create whose reply was lost, so the caller's 503 stays true", async () => {
      const project = uniqueProject();
      // The script runs in Redis, then the reply is lost (as when Redis stalls right after running it).
      const lossy = new Proxy(redis, {
        get(target, prop) {
          if (prop === "wcCreateSession") {
            return async (...args: (string | number)[]) => {
              await (
                target as unknown as { wcCreateSession(...a: (string | number)[]): Promise<unknown> }
              ).wcCreateSession(...args);
              throw new Error("Command timed out");
            };
          }
          const value = Reflect.get(target, prop);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      const lossyStore = new SessionStore(async () => lossy, { compensationClient: async () => redis });
      const rec = record(project, Date.now());
      const failure = await lossyStore
        .create({ ...request(rec, 5), idempotency: { key: "k-1", fingerprint: "fp", ttlMs: 60_000 } })
        .catch((error: unknown) => error);
      expect(failure).to.be.instanceOf(DependencyError);
      // The undo goes out on its own, right after the failure: wait for its effect.
      for (let i = 0; i < 100 && (await redis.exists(keys.session(project, rec.id))) === 1; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(await redis.exists(keys.session(project, rec.id))).to.equal(0);
      expect(await redis.zscore(keys.active(project), rec.id)).to.equal(null);
      expect(await redis.zscore(keys.sessions(project), rec.id)).to.equal(null);
      expect(await redis.exists(keys.idempotency(project, "k-1"))).to.equal(0);
    });

    it("keeps projects' limits apart", async () => {
      const a = uniqueProject();
      const b = uniqueProject();
      const now = Date.now();
      expect((await store.create(request(record(a, now), 1))).kind).to.equal("created");
      expect((await store.create(request(record(b, now), 1))).kind).to.equal("created");
      expect((await store.create(request(record(a, now), 1))).kind).to.equal("limited");
    });

    it("refuses at the limit with the earliest expiry among the live sessions", async () => {
      const project = uniqueProject();
      const now = Date.now();
      const long = record(project, now, 600);
      const short = record(project, now, 120);
      const middle = record(project, now, 300);
      for (const rec of [long, short, middle])
        expect((await store.create(request(rec, 3))).kind).to.equal("created");
      const outcome = await store.create(request(record(project, now + 1000), 3));
      expect(outcome).to.deep.equal({ kind: "limited", liveCount: 3, earliestExpiresAt: short.expiresAt });
      expect(await redis.exists(keys.session(project, short.id))).to.equal(1);
    });

    it("prunes expired ids so a create succeeds once a session has expired", async () => {
      const project = uniqueProject();
      const now = Date.now();
      const first = record(project, now, 60);
      const second = record(project, now, 120);
      await store.create(request(first, 2));
      await store.create(request(second, 2));
      expect((await store.create(request(record(project, now + 59_000), 2))).kind).to.equal("limited");

      // The script is given the time: reaching the first expiry frees its slot.
      const later = record(project, first.expiresAt);
      const outcome = await store.create(request(later, 2, first.expiresAt));
      expect(outcome).to.deep.equal({ kind: "created", liveCount: 2 });
      expect(await redis.zrange(keys.active(project), "0", "-1")).to.have.members([second.id, later.id]);
      expect(await redis.zscore(keys.active(project), first.id)).to.equal(null);
      // The expired session stays listable: only the active index forgets it.
      expect(await redis.zscore(keys.sessions(project), first.id)).not.to.equal(null);
      expect(await store.get(project, first.id)).to.not.equal(undefined);
    });

    it("counts only live sessions in activeCount", async () => {
      const project = uniqueProject();
      const now = Date.now();
      await store.create(request(record(project, now, 60), 10));
      await store.create(request(record(project, now, 600), 10));
      expect(await store.activeCount(project, now)).to.equal(2);
      expect(await store.activeCount(project, now + 60_000)).to.equal(1);
    });
  });

  describe("records", () => {
    const full: SessionRecord = {
      id: "0b7f6d0e-6a0c-4a37-9b55-5d3c2a1e0f42",
      projectId: "proj",
      principalId: "prn_abc",
      status: "COMPLETED",
      createdAt: 1_700_000_000_000,
      updatedAt: 1_700_000_100_000,
      startedAt: 1_700_000_000_000,
      expiresAt: 1_700_000_300_000,
      endedAt: 1_700_000_100_000,
      timeoutSeconds: 300,
      keepAlive: true,
      region: "us-west-2",
      contextId: "ctx-1",
      extensionId: "ext-1",
      userMetadata: { order: "42", nested: { list: [1, "two", null] }, unicode: "żółw 🐢" },
      browserSettings: { viewport: { width: 1280, height: 720 }, futureFlag: { a: true } },
      proxiesEncrypted: "eyJhbGciOiJkaXIifQ..iv.ct.tag",
      proxyBytes: 12345,
      errorReason: "browser crashed",
    };

    function toHash(fields: string[]): Record<string, string> {
      const hash: Record<string, string> = {};
      for (let i = 0; i < fields.length; i += 2) hash[fields[i]] = fields[i + 1];
      return hash;
    }

    it("round-trips every field through recordToFields and fieldsToRecord", () => {
      expect(fieldsToRecord(toHash(recordToFields(full)))).to.deep.equal(full);
    });

    it("round-trips a minimal record without inventing optional fields", () => {
      const minimal = record("proj", 1_700_000_000_000);
      const fields = recordToFields(minimal);
      expect(fields.length % 2).to.equal(0);
      const back = fieldsToRecord(toHash(fields));
      expect(back).to.deep.equal(minimal);
      expect(back).not.to.have.any.keys(
        "endedAt",
        "contextId",
        "userMetadata",
        "browserSettings",
        "errorReason",
      );
    });

    it("reads an empty hash as no record", () => {
      expect(fieldsToRecord({})).to.equal(undefined);
    });

    it("stores a record in Redis and reads it back unchanged", async () => {
      const project = uniqueProject();
      const now = Date.now();
      const rec: SessionRecord = { ...full, id: randomUUID(), projectId: project, status: "RUNNING" };
      Object.assign(rec, { createdAt: now, updatedAt: now, startedAt: now, expiresAt: now + 300_000 });
      // The record names a context: the create script checks that it exists.
      await redis.hset(keys.context(project, rec.contextId!), "id", rec.contextId!);
      expect((await store.create(request(rec, 5))).kind).to.equal("created");
      expect(await store.get(project, rec.id)).to.deep.equal(rec);
      expect(await redis.hget(keys.session(project, rec.id), "keepAlive")).to.equal("1");
    });

    it("returns undefined for an unknown session and for another project's session", async () => {
      const project = uniqueProject();
      const rec = record(project, Date.now());
      await store.create(request(rec, 5));
      expect(await store.get(project, randomUUID())).to.equal(undefined);
      expect(await store.get(uniqueProject(), rec.id)).to.equal(undefined);
    });

    it("sets the record to expire the retention period after expiresAt", async () => {
      const project = uniqueProject();
      const now = Date.now();
      const rec = record(project, now, 300);
      await store.create(request(rec, 5));
      const expected = rec.expiresAt + RETENTION_MS - Date.now();
      const pttl = await redis.pttl(keys.session(project, rec.id));
      expect(pttl).to.be.within(expected - 2000, expected + 10);
    });
  });

  describe("key layout", () => {
    it("names keys wc:{projectId}:... as DESIGN lays them out", () => {
      expect(keys.session("p1", "abc")).to.equal("wc:{p1}:session:abc");
      expect(keys.active("p1")).to.equal("wc:{p1}:active");
      expect(keys.sessions("p1")).to.equal("wc:{p1}:sessions");
      expect(keys.idempotency("p1", "k")).to.equal("wc:{p1}:idem:k");
    });

    it("gives every key a create writes the project's hash tag, so one shard holds them all", async () => {
      const project = uniqueProject();
      const rec = record(project, Date.now());
      await store.create({
        ...request(rec, 5),
        idempotency: { key: "idem-{other}", fingerprint: "f", ttlMs: 60_000 },
      });
      const written = await redis.keys(`wc:{${project}}:*`);
      expect(written).to.have.members([
        keys.session(project, rec.id),
        keys.active(project),
        keys.sessions(project),
        keys.idempotency(project, "idem-{other}"),
      ]);
      for (const key of written) expect(hashTag(key), key).to.equal(project);
    });
  });

  describe("idempotent create", () => {
    const idem = (key: string, fingerprint = "fp-1") => ({ key, fingerprint, ttlMs: 60_000 });

    it("replays the first session for a repeated key without writing a second one", async () => {
      const project = uniqueProject();
      const now = Date.now();
      const first = record(project, now);
      const retry = record(project, now + 10);
      expect((await store.create({ ...request(first, 5), idempotency: idem("k1") })).kind).to.equal(
        "created",
      );
      const outcome: CreateOutcome = await store.create({ ...request(retry, 5), idempotency: idem("k1") });
      expect(outcome).to.deep.equal({ kind: "replay", fingerprint: "fp-1", sessionId: first.id });
      expect(await redis.exists(keys.session(project, retry.id))).to.equal(0);
      expect(await redis.zcard(keys.active(project))).to.equal(1);
    });

    it("replays even when the project is at its limit", async () => {
      const project = uniqueProject();
      const now = Date.now();
      const first = record(project, now);
      await store.create({ ...request(first, 1), idempotency: idem("k") });
      const outcome = await store.create({ ...request(record(project, now), 1), idempotency: idem("k") });
      expect(outcome.kind).to.equal("replay");
    });

    it("reports the stored fingerprint so a different body can be refused", async () => {
      const project = uniqueProject();
      const now = Date.now();
      await store.create({ ...request(record(project, now), 5), idempotency: idem("k", "body-a") });
      const outcome = await store.create({
        ...request(record(project, now), 5),
        idempotency: idem("k", "body-b"),
      });
      expect(outcome.kind).to.equal("replay");
      expect((outcome as { fingerprint: string }).fingerprint).to.equal("body-a");
    });

    it("keeps the same key of different projects apart", async () => {
      const now = Date.now();
      const a = record(uniqueProject(), now);
      const b = record(uniqueProject(), now);
      await store.create({ ...request(a, 5), idempotency: idem("shared") });
      expect((await store.create({ ...request(b, 5), idempotency: idem("shared") })).kind).to.equal(
        "created",
      );
    });

    it("does not remember a create that was refused at the limit", async () => {
      const project = uniqueProject();
      const now = Date.now();
      await store.create(request(record(project, now, 60), 1));
      const refused = await store.create({ ...request(record(project, now), 1), idempotency: idem("k") });
      expect(refused.kind).to.equal("limited");
      expect(await redis.exists(keys.idempotency(project, "k"))).to.equal(0);
    });

    it("remembers the key for its TTL", async () => {
      const project = uniqueProject();
      await store.create({ ...request(record(project, Date.now()), 5), idempotency: idem("k") });
      expect(await redis.pttl(keys.idempotency(project, "k"))).to.be.within(55_000, 60_000);
    });
  });

  describe("failures", () => {
    it("turns an unreachable Redis into a 503 DependencyError", async () => {
      const dead = createRedisClient({
        url: "redis://127.0.0.1:1",
        cluster: false,
        connectTimeoutMs: 200,
        commandTimeoutMs: 200,
      });
      dead.on("error", () => undefined);
      defineSessionScripts(dead);
      try {
        const deadStore = new SessionStore(async () => dead);
        let caught: unknown;
        await deadStore.create(request(record(uniqueProject(), Date.now()), 5)).catch((e) => (caught = e));
        expect(caught).to.be.instanceOf(DependencyError);
        expect((caught as DependencyError).statusCode).to.equal(503);
        expect((caught as DependencyError).dependency).to.equal("Redis");
      } finally {
        dead.disconnect();
      }
    });
  });
});
