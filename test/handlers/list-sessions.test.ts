import { expect } from "chai";
import { createSessionHandler } from "../../handlers/create-session";
import { listSessionsHandler } from "../../handlers/list-sessions";
import type { HttpHandler, HttpResult } from "../../lib/http";
import { SESSION_STATUSES } from "../../lib/session";
import { LIST_PAGE_LIMIT, type SessionDeps } from "../../lib/sessions";
import { keys } from "../../lib/store";
import { apiEvent, createTestWorld, ctx, uniqueProject, type TestWorld } from "../support/fixtures";

interface Session {
  id: string;
  status: string;
  createdAt: string;
  projectId: string;
  userMetadata?: Record<string, unknown>;
  signingKey?: string;
}

describe("GET /v1/sessions", () => {
  let world: TestWorld;
  let list: HttpHandler;

  before(async () => {
    world = await createTestWorld();
    list = listSessionsHandler(world.runtime);
  });
  after(() => world.close());

  const depsAt = (now: number): SessionDeps => ({ ...world.runtime, now: () => now });

  /** Creates a session as if at time `at` (epoch ms), so creation order is certain. */
  const createAt = async (key: string, at: number, body: unknown = {}): Promise<Session> => {
    const res = await createSessionHandler(depsAt(at))(
      apiEvent({ method: "POST", path: "/v1/sessions", body, headers: { "X-BB-API-Key": key } }),
      ctx(),
    );
    expect(res.statusCode, res.body).to.equal(201);
    return JSON.parse(res.body);
  };

  const listRaw = (key: string, query?: Record<string, string>, handler: HttpHandler = list) =>
    handler(
      apiEvent({ method: "GET", path: "/v1/sessions", query, headers: { "X-BB-API-Key": key } }),
      ctx(),
    );

  const listOk = async (key: string, query?: Record<string, string>, handler?: HttpHandler) => {
    const res = await listRaw(key, query, handler);
    expect(res.statusCode, res.body).to.equal(200);
    const body = JSON.parse(res.body);
    expect(body).to.be.an("array");
    return body as Session[];
  };

  const ids = (sessions: Session[]) => sessions.map((s) => s.id);

  const expectBadRequest = (res: HttpResult) => {
    expect(res.statusCode, res.body).to.equal(400);
    const body = JSON.parse(res.body);
    expect(body).to.include({ statusCode: 400, error: "Bad Request" });
    return body.message as string;
  };

  it("lists the project's sessions newest first, without signingKey", async () => {
    const key = world.addKey(uniqueProject());
    const t = Date.now();
    const a = await createAt(key, t - 3000);
    const c = await createAt(key, t - 1000);
    const b = await createAt(key, t - 2000);
    const sessions = await listOk(key);
    expect(ids(sessions)).to.deep.equal([c.id, b.id, a.id]);
    for (const session of sessions) {
      expect(session).to.not.have.property("signingKey");
      expect(session).to.not.have.property("connectUrl");
      expect(session.status).to.equal("RUNNING");
    }
  });

  it("returns an empty array for a project without sessions", async () => {
    const key = world.addKey(uniqueProject());
    expect(await listOk(key)).to.deep.equal([]);
  });

  it("lists only the caller's project's sessions", async () => {
    const projectA = uniqueProject("a");
    const projectB = uniqueProject("b");
    const keyA = world.addKey(projectA);
    const keyB = world.addKey(projectB);
    const t = Date.now();
    const a1 = await createAt(keyA, t - 2000, { userMetadata: { order: "42" } });
    const b1 = await createAt(keyB, t - 1500, { userMetadata: { order: "42" } });
    const a2 = await createAt(keyA, t - 1000);

    expect(ids(await listOk(keyA))).to.deep.equal([a2.id, a1.id]);
    expect(ids(await listOk(keyB))).to.deep.equal([b1.id]);
    expect(ids(await listOk(keyB, { q: "user_metadata['order']:'42'" }))).to.deep.equal([b1.id]);
    for (const s of await listOk(keyB)) expect(s.projectId).to.equal(projectB);
  });

  it("filters by status, TIMED_OUT and ERROR included, as a client sees the status at that moment", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const t = Date.now();
    const running = await createAt(key, t - 4000, { timeout: 3600 });
    const timedOut = await createAt(key, t - 3000, { timeout: 60 });
    const completed = await createAt(key, t - 2000, { timeout: 3600 });
    const failed = await createAt(key, t - 1000, { timeout: 3600 });
    expect(await world.runtime.store.release(project, completed.id, t)).to.have.property(
      "status",
      "COMPLETED",
    );
    expect(await world.runtime.store.fail(project, failed.id, "crashed", t)).to.have.property(
      "status",
      "ERROR",
    );

    // Ten minutes on, the 60-second session has timed out; the others have not.
    const later = listSessionsHandler(depsAt(t + 10 * 60_000));
    const byStatus = async (status: string) => ids(await listOk(key, { status }, later));
    expect(await byStatus("RUNNING")).to.deep.equal([running.id]);
    expect(await byStatus("TIMED_OUT")).to.deep.equal([timedOut.id]);
    expect(await byStatus("COMPLETED")).to.deep.equal([completed.id]);
    expect(await byStatus("ERROR")).to.deep.equal([failed.id]);
    expect(await byStatus("PENDING")).to.deep.equal([]);

    // At the real time, the short session still runs.
    expect(ids(await listOk(key, { status: "RUNNING" }))).to.deep.equal([timedOut.id, running.id]);
    // No filter, or an empty one: everything, with the derived statuses.
    const all = await listOk(key, { status: "" }, later);
    expect(all.map((s) => s.status)).to.deep.equal(["ERROR", "COMPLETED", "TIMED_OUT", "RUNNING"]);
  });

  it("lists with status=RUNNING every live session, however many ended sessions are newer; q still applies", async () => {
    const project = uniqueProject();
    const key = world.addKey(project, { concurrency: 10 });
    const t = Date.now();
    const old = await createAt(key, t - 60_000, { timeout: 3600, userMetadata: { job: "old" } });
    const older = await createAt(key, t - 61_000, { timeout: 3600, userMetadata: { job: "other" } });
    // 1,000 newer sessions, all ended: written straight to the store (a pipeline), released at once.
    const redis = await world.runtime.redis();
    for (let batch = 0; batch < 10; batch++) {
      const pipeline = redis.pipeline();
      for (let i = 0; i < 100; i++) {
        const id = `00000000-0000-4000-8000-${String(batch * 100 + i).padStart(12, "0")}`;
        const at = t - 50_000 + batch * 100 + i;
        pipeline.hset(keys.session(project, id), { id, projectId: project, principalId: "prn_x", status: "COMPLETED",
          createdAt: at, updatedAt: at, startedAt: at, expiresAt: at + 60_000, endedAt: at + 1, timeoutSeconds: 60,
          keepAlive: "0", region: "us-west-2", proxyBytes: 0 }); // prettier-ignore
        pipeline.zadd(keys.sessions(project), at, id);
      }
      await pipeline.exec();
    }
    const running = await listOk(key, { status: "RUNNING" });
    expect(running.map((s) => s.id)).to.deep.equal([old.id, older.id]);
    const filtered = await listOk(key, { status: "RUNNING", q: "user_metadata['job']:'old'" });
    expect(filtered.map((s) => s.id)).to.deep.equal([old.id]);
    // Without the status filter, the newest 1,000 are read: the live ones are beyond them.
    expect((await listOk(key)).some((s) => s.id === old.id)).to.equal(false);
  });

  it("answers 400 naming the allowed values for an unknown status", async () => {
    const key = world.addKey(uniqueProject());
    for (const status of ["FINISHED", "running", "RUNNING,COMPLETED"]) {
      const message = expectBadRequest(await listRaw(key, { status }));
      expect(message).to.include("status");
      for (const allowed of SESSION_STATUSES) expect(message).to.include(allowed);
    }
  });

  describe("q, the user-metadata query", () => {
    let key: string;
    const made: Record<string, Session> = {};

    before(async () => {
      key = world.addKey(uniqueProject(), { concurrency: 50 });
      const t = Date.now();
      const metadata: Record<string, unknown> = {
        order42: { order: "42" },
        order43: { order: "43" },
        order42Number: { order: 42 },
        order42Prod: { order: "42", env: "prod" },
        nested: { a: { b: "x" } },
        nestedOther: { a: { b: "y" }, b: "x" },
        flag: { flag: true, order: "421" },
        quoted: { note: "it's AND done" },
        none: {},
      };
      let i = 0;
      for (const [name, userMetadata] of Object.entries(metadata)) {
        made[name] = await createAt(key, t - 10_000 + i++ * 100, { userMetadata });
      }
      await createAt(key, t, {});
    });

    const query = async (q: string, extra: Record<string, string> = {}) => {
      const found = await listOk(key, { q, ...extra });
      const names = Object.entries(made)
        .filter(([, s]) => found.some((f) => f.id === s.id))
        .map(([name]) => name);
      expect(found.length, "only sessions made in this block").to.equal(names.length);
      return names.sort();
    };

    it("matches one key's string value exactly", async () => {
      expect(await query("user_metadata['order']:'42'")).to.deep.equal(
        ["order42", "order42Number", "order42Prod"].sort(),
      );
      expect(await query("user_metadata['order']:'4'")).to.deep.equal([]);
    });

    it("accepts double quotes and a bare value", async () => {
      expect(await query('user_metadata["order"]:"43"')).to.deep.equal(["order43"]);
      expect(await query("user_metadata['order']:43")).to.deep.equal(["order43"]);
    });

    it("follows nested keys", async () => {
      expect(await query("user_metadata['a']['b']:'x'")).to.deep.equal(["nested"]);
      expect(await query("user_metadata['b']:'x'")).to.deep.equal(["nestedOther"]);
      expect(await query("user_metadata['a']:'x'")).to.deep.equal([]);
    });

    it("requires every clause joined with AND", async () => {
      expect(await query("user_metadata['order']:'42' AND user_metadata['env']:'prod'")).to.deep.equal([
        "order42Prod",
      ]);
      expect(await query("user_metadata['order']:'43' and user_metadata['env']:'prod'")).to.deep.equal([]);
    });

    it("matches numbers and booleans by their text", async () => {
      expect(await query("user_metadata['flag']:'true'")).to.deep.equal(["flag"]);
      expect(await query("user_metadata['flag']:true")).to.deep.equal(["flag"]);
      expect(await query("user_metadata['flag']:'false'")).to.deep.equal([]);
      expect(await query("user_metadata['order']:42")).to.include("order42Number");
    });

    it("keeps AND inside a quoted value as text", async () => {
      expect(await query("user_metadata['note']:'it\\'s AND done'")).to.deep.equal(["quoted"]);
    });

    it("combines with the status filter", async () => {
      expect(await query("user_metadata['order']:'43'", { status: "RUNNING" })).to.deep.equal(["order43"]);
      expect(await query("user_metadata['order']:'43'", { status: "COMPLETED" })).to.deep.equal([]);
    });

    it("answers 400 that says what is wrong with a malformed query", async () => {
      const cases: [string, string][] = [
        ["order:'42'", "expected user_metadata"],
        ["user_metadata['order']", "expected :"],
        ["user_metadata:'42'", "expected ['key']"],
        ["user_metadata['order']:'42", "unterminated string"],
        ["user_metadata['order':'42'", "expected ]"],
        ["user_metadata['a']:'1' OR user_metadata['b']:'2'", "expected AND"],
        ["user_metadata['a']:'1' AND", "expected user_metadata"],
        ["user_metadata['a']:", "expected a value"],
        ["   ", "empty query"],
      ];
      for (const [q, why] of cases) {
        const message = expectBadRequest(await listRaw(key, { q }));
        expect(message, q).to.include("q is not a valid user-metadata query");
        expect(message, q).to.include(why);
        expect(message, q).to.match(/at position \d+/);
      }
      const tooLong = expectBadRequest(await listRaw(key, { q: "user_metadata['a']:'" + "x".repeat(3000) }));
      expect(tooLong).to.include("longer than");
    });
  });

  it(`returns at most ${LIST_PAGE_LIMIT} sessions, the newest, and still finds an older match`, async () => {
    const project = uniqueProject();
    const key = world.addKey(project, { concurrency: 200 });
    const t = Date.now() - 60_000;
    // The oldest is the only one with `oldest`; the newest lacks `bulk`, so the newest hundred hold
    // 99 bulk sessions and a filtered page has to be filled from further back.
    const total = LIST_PAGE_LIMIT + 6;
    const metadataOf = (i: number) =>
      i === 0 ? { oldest: "yes" } : i === total - 1 ? {} : { bulk: "1", n: String(i) };
    const sessions = await Promise.all(
      Array.from({ length: total }, (_, i) => createAt(key, t + i * 10, { userMetadata: metadataOf(i) })),
    );
    const newestFirst = ids(sessions).reverse();

    const page = await listOk(key);
    expect(page).to.have.length(LIST_PAGE_LIMIT);
    expect(ids(page)).to.deep.equal(newestFirst.slice(0, LIST_PAGE_LIMIT));

    const bulk = await listOk(key, { q: "user_metadata['bulk']:'1'" });
    expect(bulk).to.have.length(LIST_PAGE_LIMIT);
    expect(ids(bulk)).to.deep.equal(newestFirst.slice(1, LIST_PAGE_LIMIT + 1));

    expect(ids(await listOk(key, { q: "user_metadata['oldest']:'yes'" }))).to.deep.equal([sessions[0].id]);
  });

  it("skips a session whose record has expired while its id is still in the index", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const t = Date.now();
    const a = await createAt(key, t - 3000);
    const b = await createAt(key, t - 2000);
    const c = await createAt(key, t - 1000);
    const redis = await world.runtime.redis();
    await redis.pexpire(keys.session(project, b.id), 1);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await redis.zscore(keys.sessions(project), b.id)).to.not.equal(null);

    expect(ids(await listOk(key))).to.deep.equal([c.id, a.id]);
    expect(ids(await listOk(key, { status: "RUNNING" }))).to.deep.equal([c.id, a.id]);
  });

  it("answers 401 without an API key", async () => {
    const res = await list(apiEvent({ method: "GET", path: "/v1/sessions" }), ctx());
    expect(res.statusCode).to.equal(401);
  });
});
