import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { expect } from "chai";
import type { HttpResult } from "../../lib/http";
import { FileSecretSource, SecretCache, SecretsManagerSource } from "../../lib/secrets";
import { newSessionId, type SessionDeps } from "../../lib/sessions";
import { keys } from "../../lib/store";
import { readSecrets } from "../../local/secrets-file";
import { createTestWorld, uniqueProject, type TestWorld } from "../support/fixtures";
import { startOwnRedis } from "../support/redis";
import { apiFor, expectErrorShape, sleep, type Api, type ApiRequest } from "./api";

/** What a 503 must look like: the JSON error shape, a generic message and Retry-After. */
function expectServiceUnavailable(res: HttpResult): void {
  expect(res.statusCode, res.body).to.equal(503);
  const body = expectErrorShape(res);
  expect(body.error).to.equal("Service Unavailable");
  expect(body.message).to.equal("The service is temporarily unavailable; retry shortly.");
  expect(res.headers["retry-after"]).to.equal("1");
}

/** Records unhandled rejections and uncaught exceptions while a fault is injected. */
function watchProcess() {
  const problems: unknown[] = [];
  const onProblem = (error: unknown) => problems.push(error);
  process.on("unhandledRejection", onProblem);
  process.on("uncaughtException", onProblem);
  return {
    problems,
    stop: () => {
      process.off("unhandledRejection", onProblem);
      process.off("uncaughtException", onProblem);
    },
  };
}

describe("faults: Redis killed under load and restarted", function () {
  this.timeout(30_000);

  interface Outcome {
    op: "create" | "get" | "release" | "list";
    status: number;
    start: number;
    end: number;
    id?: string;
    body?: string;
    threw?: unknown;
  }

  it("answers only fast 503s during the outage, recovers within 2 s and leaks or loses no slot", async () => {
    // Every acknowledged write reaches the disk before its reply, so the restarted server has exactly
    // what clients were told succeeded (plus whatever was in flight at the kill).
    const server = await startOwnRedis(["--appendonly", "yes", "--appendfsync", "always"]);
    const world = await createTestWorld({ redisUrl: server.url });
    const watch = watchProcess();
    try {
      const project = uniqueProject("kill");
      const LIMIT = 40;
      const key = world.addKey(project, { concurrency: LIMIT });
      const outcomes: Outcome[] = [];
      let stopping = false;

      /** One worker: its own handlers, so the id its newId hands out belongs to its one open request. */
      const worker = async () => {
        let lastId: string | undefined;
        const deps: SessionDeps = {
          ...world.runtime,
          newId: () => (lastId = newSessionId()),
        };
        const api = apiFor(deps);
        const call = async (op: Outcome["op"], request: ApiRequest, id?: string) => {
          lastId = undefined;
          const start = performance.now();
          const outcome: Outcome = { op, status: 0, start, end: start, id };
          outcomes.push(outcome);
          try {
            const res = await api.send({ ...request, key });
            outcome.status = res.statusCode;
            if (res.statusCode >= 400) outcome.body = res.body;
            if (res.statusCode === 503) expectServiceUnavailable(res);
            return res;
          } catch (error) {
            outcome.threw = error;
            return undefined;
          } finally {
            outcome.end = performance.now();
            if (op === "create") outcome.id = lastId;
          }
        };
        let live: string | undefined;
        for (let i = 0; i < 5000 && !stopping; i++) {
          if (!live) {
            const res = await call("create", {
              method: "POST",
              path: "/v1/sessions",
              body: { timeout: 600 },
            });
            if (res?.statusCode === 201) live = JSON.parse(res.body).id;
          } else if (i % 3 === 1) {
            await call("get", { method: "GET", path: `/v1/sessions/${live}` }, live);
          } else if (i % 7 === 2) {
            await call("list", { method: "GET", path: "/v1/sessions" });
          } else {
            const path = `/v1/sessions/${live}`;
            const res = await call(
              "release",
              { method: "POST", path, body: { status: "REQUEST_RELEASE" } },
              live,
            );
            if (res?.statusCode === 200) live = undefined;
          }
        }
      };

      const workers = Array.from({ length: 8 }, worker);
      await sleep(400);
      const killAt = performance.now();
      await server.kill();
      const killedAt = performance.now();
      // Long enough for each worker to see several 503s (each waits out the 500 ms connect timeout).
      await sleep(3000);
      const restartBegan = performance.now();
      await server.restart();
      const restartedAt = performance.now();
      await sleep(2500);
      stopping = true;
      await Promise.all(workers);

      // Nothing escaped a handler and the process saw no stray rejection.
      expect(outcomes.filter((o) => o.threw).map((o) => String(o.threw))).to.deep.equal([]);
      expect(watch.problems.map(String)).to.deep.equal([]);

      const before = outcomes.filter((o) => o.end < killAt);
      const during = outcomes.filter((o) => o.start > killedAt && o.end < restartedAt);
      const after = outcomes.filter((o) => o.start > restartedAt);
      const statuses = (list: Outcome[]) => [...new Set(list.map((o) => o.status))].sort();
      expect(before.length, "load ran before the kill").to.be.greaterThan(20);
      expect(statuses(before)).to.deep.equal([200, 201]);
      // During the outage: only 503, each one fast.
      expect(during.length, "requests were made during the outage").to.be.greaterThan(8);
      expect(statuses(during), JSON.stringify(during.find((o) => o.status !== 503))).to.deep.equal([503]);
      const outageLatencies = during.map((o) => o.end - o.start).sort((a, b) => a - b);
      const slowest = outageLatencies[outageLatencies.length - 1];
      // Bounds hold on a machine three times slower than usual; the point is seconds, not the function's timeout.
      expect(slowest, "slowest 503 during the outage (ms)").to.be.below(3000);
      // Never anything but success or a 503, in any phase.
      expect(
        outcomes
          .filter((o) => ![200, 201, 503].includes(o.status))
          .map((o) => `${o.op} ${o.status} ${o.body}`),
      ).to.deep.equal([]);

      // Within 2 s of the restart requests succeed, and from then on all of them do.
      const firstSuccess = after.find((o) => o.status < 300);
      expect(firstSuccess, "a request succeeded after the restart").to.not.equal(undefined);
      const recoveryMs = firstSuccess!.end - restartedAt;
      expect(recoveryMs, "time from restart to the first success (ms)").to.be.below(4000);
      const settled = after.filter((o) => o.start > restartedAt + 2000);
      expect(settled.length).to.be.greaterThan(20);
      expect(statuses(settled)).to.deep.equal([200, 201]);

      // Exactly the right sessions hold slots. A request in flight while the server was being killed
      // may or may not have happened; every other outcome is known: a 2xx happened, a 503 did not.
      const redis = await world.runtime.redis();
      const active = new Set(await redis.zrange(keys.active(project), "0", "-1"));
      const inFlightAtKill = (o: Outcome) => o.start <= killedAt && o.end >= killAt;
      const expected = new Set<string>();
      const doubtful = new Set<string>();
      for (const o of [...outcomes].sort((a, b) => a.start - b.start)) {
        if (!o.id || (o.op !== "create" && o.op !== "release")) continue;
        if (inFlightAtKill(o) && o.status === 503) {
          doubtful.add(o.id);
        } else if (o.op === "create" && o.status === 201) {
          expected.add(o.id);
          doubtful.delete(o.id);
        } else if (o.op === "release" && o.status === 200) {
          expected.delete(o.id);
          doubtful.delete(o.id);
        }
      }
      const unexplained = [...active].filter((id) => !expected.has(id) && !doubtful.has(id));
      const missing = [...expected].filter((id) => !active.has(id) && !doubtful.has(id));
      expect(unexplained, "sessions holding a slot that no acknowledged create explains").to.deep.equal([]);
      expect(missing, "acknowledged live sessions missing from the active set").to.deep.equal([]);
      // A create refused with 503 after the kill must not have happened, not even later.
      const phantom: string[] = [];
      for (const o of outcomes) {
        if (o.op === "create" && o.status === 503 && o.id && !inFlightAtKill(o)) {
          if ((await redis.exists(keys.session(project, o.id))) === 1) phantom.push(o.id);
        }
      }
      expect(phantom, "sessions written by creates that were answered 503").to.deep.equal([]);
      // Every record and the active set agree.
      for (const id of new Set(outcomes.filter((o) => o.id).map((o) => o.id!))) {
        const record = await world.runtime.store.get(project, id);
        if (!record) continue;
        expect(active.has(id), `record ${id} is ${record.status}`).to.equal(record.status === "RUNNING");
      }

      // The limit counts exactly these: LIMIT - live more creates succeed, no more.
      const api = apiFor(world.runtime);
      const burst = await Promise.all(
        Array.from({ length: LIMIT - active.size + 5 }, () =>
          api.send({ method: "POST", path: "/v1/sessions", key, body: {} }),
        ),
      );
      expect(burst.filter((r) => r.statusCode === 201).length).to.equal(LIMIT - active.size);
      expect(burst.filter((r) => r.statusCode === 429).length).to.equal(5);

      const p50 = outageLatencies[Math.floor(outageLatencies.length / 2)];
      console.log(
        `      Redis outage: ${during.length} requests, all 503, p50 ${p50.toFixed(0)} ms, max ${slowest.toFixed(0)} ms; ` +
          `restart took ${(restartedAt - restartBegan).toFixed(0)} ms; first success ${recoveryMs.toFixed(0)} ms after it; ` +
          `${active.size} live sessions, ${doubtful.size} in doubt at the kill`,
      );
    } finally {
      watch.stop();
      await world.close();
      await server.stop();
    }
  });
});

/** A loopback TCP proxy that holds every chunk for `delayMs` before passing it on, in order. */
class DelayProxy {
  delayMs = 0;
  /** While set, each new connection is accepted and closed at once (as a restarting server would). */
  refuse = false;
  refused = 0;
  port = 0;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly targetPort: number) {}

  async start(): Promise<void> {
    this.server = createServer((client) => {
      if (this.refuse) {
        this.refused++;
        client.destroy();
        return;
      }
      const upstream = createConnection({ host: "127.0.0.1", port: this.targetPort });
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on("close", () => this.sockets.delete(socket));
        socket.on("error", () => undefined);
      }
      this.relay(client, upstream);
      this.relay(upstream, client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.port = (this.server!.address() as AddressInfo).port;
  }

  private relay(from: Socket, to: Socket): void {
    const queue: { at: number; chunk: Buffer }[] = [];
    let timer: NodeJS.Timeout | undefined;
    const pump = () => {
      timer = undefined;
      const now = performance.now();
      while (queue.length > 0 && queue[0].at <= now) {
        const { chunk } = queue.shift()!;
        if (!to.destroyed) to.write(chunk);
      }
      if (queue.length > 0) timer = setTimeout(pump, queue[0].at - now);
    };
    from.on("data", (chunk: Buffer) => {
      const last = queue.length > 0 ? queue[queue.length - 1].at : 0;
      queue.push({ at: Math.max(performance.now() + this.delayMs, last), chunk });
      if (!timer) timer = setTimeout(pump, Math.max(0, queue[0].at - performance.now()));
    });
    from.on("close", () => {
      if (timer) clearTimeout(timer);
      queue.length = 0;
    });
  }

  /** Resolves once `count` connections have been refused (bounded by `timeoutMs`). */
  async waitRefused(count: number, timeoutMs = 5000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.refused < count) {
      if (performance.now() > deadline) throw new Error(`only ${this.refused} connections were refused`);
      await sleep(2);
    }
  }

  /** Cuts every open connection (the client reconnects through the proxy). */
  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

describe("faults: Redis stalled (SIGSTOP) under create load", function () {
  this.timeout(60_000);

  it("leaves no phantom session: every create answered 503 wrote nothing, and the active count is exact", async () => {
    const server = await startOwnRedis();
    const world = await createTestWorld({ redisUrl: server.url });
    const watch = watchProcess();
    try {
      const project = uniqueProject("stall");
      const key = world.addKey(project, { concurrency: 100_000 });
      const api = apiFor(world.runtime);
      const created: string[] = [];
      const statuses = new Map<number, number>();
      let running = true;
      const worker = async () => {
        while (running) {
          const res = await api.send({ method: "POST", path: "/v1/sessions", key, body: {} });
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
          if (res.statusCode === 201) created.push(JSON.parse(res.body).id);
          else expectServiceUnavailable(res);
        }
      };
      const workers = Array.from({ length: 8 }, worker);
      const until = async (what: string, check: () => boolean) => {
        for (let i = 0; i < 600 && !check(); i++) await sleep(50);
        expect(check(), what).to.equal(true);
      };
      // Load first, then stall Redis while creates are on the wire, long past the command timeout.
      await until("creates before the stall", () => created.length >= 20);
      const before503 = statuses.get(503) ?? 0;
      server.process.kill("SIGSTOP");
      await until("creates answered 503 during the stall", () => (statuses.get(503) ?? 0) >= before503 + 8);
      await sleep(1500);
      server.process.kill("SIGCONT");
      // Redis now runs every script that waited in its socket buffers: each must refuse, past its deadline.
      const resumedAt = created.length;
      await until("creates succeeding again", () => created.length >= resumedAt + 20);
      running = false;
      await Promise.all(workers);

      const redis = await world.runtime.redis();
      const stored = await redis.zrange(keys.sessions(project), "0", "-1");
      const phantom = stored.filter((id) => !created.includes(id));
      expect(phantom, "sessions stored by creates that were answered 503").to.deep.equal([]);
      expect(new Set(stored)).to.deep.equal(new Set(created));
      expect(await redis.zcard(keys.active(project)), "live sessions").to.equal(created.length);
      expect(watch.problems.map(String)).to.deep.equal([]);
      console.log(
        `      Redis stalled about 2 s under 8 concurrent creates: ${created.length} created, ` +
          `${statuses.get(503) ?? 0} answered 503, ${phantom.length} phantom sessions`,
      );
    } finally {
      watch.stop();
      server.process.kill("SIGCONT");
      await world.close();
      await server.stop();
    }
  });
});

describe("faults: Redis slow", function () {
  this.timeout(20_000);

  it("fails requests with 503 at REDIS_COMMAND_TIMEOUT_MS, not later, and recovers when Redis is fast again", async () => {
    const server = await startOwnRedis();
    const proxy = new DelayProxy(server.port);
    await proxy.start();
    const TIMEOUT_MS = 300;
    const world = await createTestWorld({
      redisUrl: `redis://127.0.0.1:${proxy.port}`,
      env: { REDIS_COMMAND_TIMEOUT_MS: String(TIMEOUT_MS) },
    });
    const watch = watchProcess();
    try {
      expect(world.config.redis.commandTimeoutMs).to.equal(TIMEOUT_MS);
      const api = apiFor(world.runtime);
      const project = uniqueProject("slow");
      const key = world.addKey(project);
      const made = await api.send({ method: "POST", path: "/v1/sessions", key, body: {} });
      expect(made.statusCode, made.body).to.equal(201);
      const id = JSON.parse(made.body).id as string;

      // Far beyond the command timeout plus any slack the bounds below allow.
      proxy.delayMs = 4000;
      const requests: ApiRequest[] = [
        { method: "POST", path: "/v1/sessions", key, body: {} },
        { method: "GET", path: `/v1/sessions/${id}`, key },
        { method: "GET", path: "/v1/sessions", key },
        { method: "GET", path: `/v1/sessions/${id}/debug`, key },
        { method: "POST", path: `/v1/sessions/${id}`, key, body: { status: "REQUEST_RELEASE" } },
      ];
      const timings: number[] = [];
      for (const request of requests) {
        const start = performance.now();
        const res = await api.send(request);
        const elapsed = performance.now() - start;
        timings.push(elapsed);
        expectServiceUnavailable(res);
        expect(
          elapsed,
          `${request.method} ${request.path} answered after ${elapsed.toFixed(0)} ms`,
        ).to.be.within(TIMEOUT_MS - 20, TIMEOUT_MS + 1500);
      }
      // Concurrent requests each time out on their own clock, not one after another.
      const start = performance.now();
      const burst = await Promise.all(requests.map((request) => api.send(request)));
      const burstMs = performance.now() - start;
      for (const res of burst) expectServiceUnavailable(res);
      expect(burstMs).to.be.below(TIMEOUT_MS + 1500);

      proxy.delayMs = 0;
      await sleep(4100); // the delayed replies drain
      const again = await api.send({ method: "GET", path: `/v1/sessions/${id}`, key });
      expect(again.statusCode, again.body).to.equal(200);
      // The creates answered 503 reached Redis 4 s late, past their deadline: none took effect,
      // and the release answered 503 did not end the session either.
      const redis = await world.runtime.redis();
      expect(
        await redis.zrange(keys.sessions(project), "0", "-1"),
        "sessions after the slow spell",
      ).to.deep.equal([id]);
      expect(JSON.parse(again.body).status).to.equal("RUNNING");
      expect(watch.problems.map(String)).to.deep.equal([]);
      console.log(
        `      Redis slow (+4000 ms): 503 after ${timings.map((t) => t.toFixed(0)).join(", ")} ms ` +
          `(command timeout ${TIMEOUT_MS} ms); 5 concurrent in ${burstMs.toFixed(0)} ms`,
      );
    } finally {
      watch.stop();
      await world.close();
      await proxy.stop();
      await server.stop();
    }
  });
});

/** What each test of a 503 that must never take effect works with. */
interface LateCreateSetup {
  world: TestWorld;
  proxy: DelayProxy;
  api: Api;
  project: string;
  key: string;
  /** The id the latest create was given on its way to the store (a test clears it before the one it watches). */
  lastId: string | undefined;
}

/**
 * Runs `test` against a test world whose Redis (a server of its own) sits behind a DelayProxy,
 * with a 200 ms command timeout and a 100 ms connect timeout, once a key for a new project
 * (named with `prefix`) has created one session; then stops the world, the proxy and the server,
 * whatever `test` did.
 */
async function withProxiedRedis(
  prefix: string,
  test: (setup: LateCreateSetup) => Promise<void>,
): Promise<void> {
  const server = await startOwnRedis();
  const proxy = new DelayProxy(server.port);
  await proxy.start();
  const world = await createTestWorld({
    redisUrl: `redis://127.0.0.1:${proxy.port}`,
    env: { REDIS_COMMAND_TIMEOUT_MS: "200", REDIS_CONNECT_TIMEOUT_MS: "100" },
  });
  try {
    const project = uniqueProject(prefix);
    const setup: LateCreateSetup = {
      world,
      proxy,
      api: apiFor({ ...world.runtime, newId: () => (setup.lastId = newSessionId()) }),
      project,
      key: world.addKey(project),
      lastId: undefined,
    };
    const first = await setup.api.send({ method: "POST", path: "/v1/sessions", key: setup.key, body: {} });
    expect(first.statusCode, first.body).to.equal(201);
    await test(setup);
  } finally {
    await world.close();
    await proxy.stop();
    await server.stop();
  }
}

/**
 * Once the connection is back: a further create succeeds, the create answered 503 (`refusedId`)
 * left no record, and the project has just the two created sessions.
 */
async function expectRefusedCreateNeverRan(
  setup: LateCreateSetup,
  refusedId: string | undefined,
): Promise<void> {
  const { world, api, project, key } = setup;
  const after = await api.send({ method: "POST", path: "/v1/sessions", key, body: {} });
  expect(after.statusCode, after.body).to.equal(201);
  const redis = await world.runtime.redis();
  if (refusedId === undefined) expect.fail("the refused create never reached the store");
  expect(await redis.exists(keys.session(project, refusedId)), "the refused create's record").to.equal(0);
  expect(await redis.zcard(keys.active(project)), "live sessions").to.equal(2);
}

describe("faults: a request answered 503 never takes effect later", function () {
  this.timeout(20_000);

  it("does not run a create that timed out while the client was reconnecting", async () => {
    await withProxiedRedis("late", async (setup) => {
      const { api, proxy, key } = setup;
      // Redis goes away: the client's reconnect attempts are refused, with growing pauses between
      // them (50, 100, 150, 200, 250, then 300 ms). A create arrives during the 300 ms pause, and
      // Redis is back for the attempt that ends it.
      proxy.refuse = true;
      proxy.dropConnections();
      await proxy.waitRefused(5);
      await sleep(20);
      setup.lastId = undefined;
      const pending = api.send({ method: "POST", path: "/v1/sessions", key, body: {} });
      proxy.refuse = false;
      const refused = await pending;
      const refusedId = setup.lastId;
      expectServiceUnavailable(refused);

      // Once the connection is back, nothing answered 503 runs after the fact.
      await sleep(600);
      await expectRefusedCreateNeverRan(setup, refusedId);
    });
  });
  it("does not resend a create whose connection dropped before Redis saw it", async () => {
    await withProxiedRedis("resend", async (setup) => {
      const { api, proxy, key } = setup;
      // The create is written to the connection but held on the way; the connection then drops
      // (the held bytes are lost) and Redis refuses reconnects for a while.
      proxy.delayMs = 1000;
      setup.lastId = undefined;
      const pending = api.send({ method: "POST", path: "/v1/sessions", key, body: {} });
      await sleep(100);
      proxy.refuse = true;
      proxy.dropConnections();
      const refused = await pending;
      const refusedId = setup.lastId;
      expectServiceUnavailable(refused);
      await proxy.waitRefused(3);
      proxy.delayMs = 0;
      proxy.refuse = false;

      await sleep(700);
      await expectRefusedCreateNeverRan(setup, refusedId);
    });
  });
});

const API_KEYS_ARN = "arn:aws:secretsmanager:us-west-2:123456789012:secret:wallcrawler/api-keys-AbCdEf";
const TOKEN_KEYS_ARN = "arn:aws:secretsmanager:us-west-2:123456789012:secret:wallcrawler/token-keys-GhIjKl";

/** Secrets Manager's GetSecretValue (JSON 1.1 protocol) on loopback, stoppable and restartable on its port. */
class FakeSecretsManager {
  readonly values = new Map<string, string>();
  served = 0;
  /** While set, requests are read and never answered (a black-holed endpoint). */
  hang = false;
  port = 0;
  private server: HttpServer | undefined;

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts listening (on the same port as before, after a stop); does nothing when already listening. */
  async start(): Promise<void> {
    if (this.server) return;
    this.server = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        if (this.hang) return;
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as { SecretId?: string };
        const value = body.SecretId === undefined ? undefined : this.values.get(body.SecretId);
        if (req.headers["x-amz-target"] !== "secretsmanager.GetSecretValue" || value === undefined) {
          res.writeHead(400, { "content-type": "application/x-amz-json-1.1" });
          res.end(JSON.stringify({ __type: "ResourceNotFoundException", message: "not found" }));
          return;
        }
        this.served++;
        res.writeHead(200, { "content-type": "application/x-amz-json-1.1" });
        res.end(
          JSON.stringify({ ARN: body.SecretId, Name: "wallcrawler", SecretString: value, VersionId: "v1" }),
        );
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, "127.0.0.1", resolve));
    this.port = (this.server!.address() as AddressInfo).port;
  }

  /** Closes the listener and every connection: further requests are refused. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe("faults: Secrets Manager down", function () {
  this.timeout(20_000);
  let world: TestWorld;
  let fake: FakeSecretsManager;
  let key: string;
  let previousEndpoint: string | undefined;
  const stale: string[] = [];

  before(async () => {
    world = await createTestWorld();
    key = world.addKey(uniqueProject("sm"));
    const local = readSecrets(world.secretsFile);
    fake = new FakeSecretsManager();
    fake.values.set(API_KEYS_ARN, JSON.stringify(local.apiKeys));
    fake.values.set(TOKEN_KEYS_ARN, JSON.stringify(local.tokenKeys));
    await fake.start();
    previousEndpoint = process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER;
    process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER = fake.endpoint;
  });
  after(async () => {
    if (previousEndpoint === undefined) delete process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER;
    else process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER = previousEndpoint;
    await fake.stop();
    await world.close();
  });

  /**
   * A container's secrets wiring as the runtime makes it: SecretsManagerSource with its own signed-request
   * client and timeouts, pointed at the fake by AWS_ENDPOINT_URL_SECRETS_MANAGER.
   */
  function containerDeps(ttlMs: number): SessionDeps {
    const secrets = new SecretCache(new SecretsManagerSource(), new FileSecretSource(), {
      ttlMs,
      maxStaleMs: 60_000,
      onStale: (ref) => stale.push(ref),
    });
    const config = { ...world.config, apiKeysSecretRef: API_KEYS_ARN, tokenKeysSecretRef: TOKEN_KEYS_ARN };
    return { ...world.runtime, config, secrets };
  }

  it("keeps a warm container serving every route from its cache while the endpoint is stopped", async () => {
    await fake.start();
    const api = apiFor(containerDeps(200));
    const first = await api.send({ method: "POST", path: "/v1/sessions", key, body: {} });
    expect(first.statusCode, first.body).to.equal(201);
    expect(fake.served, "both secrets fetched").to.be.at.least(2);
    await fake.stop();
    await sleep(250); // past the TTL: every request now tries a refresh, which is refused
    const id = JSON.parse(first.body).id as string;
    const timings: number[] = [];
    for (const request of [
      { method: "POST", path: "/v1/sessions", key, body: {} },
      { method: "GET", path: `/v1/sessions/${id}`, key },
      { method: "GET", path: "/v1/sessions", key },
      { method: "GET", path: `/v1/sessions/${id}/debug`, key },
      { method: "POST", path: `/v1/sessions/${id}`, key, body: { status: "REQUEST_RELEASE" } },
    ]) {
      const start = performance.now();
      const res = await api.send(request);
      timings.push(performance.now() - start);
      expect(res.statusCode, `${request.method} ${request.path}: ${res.body}`).to.be.oneOf([200, 201]);
    }
    expect(stale.length, "the stale value was served and noted").to.be.greaterThan(0);
    expect(stale.every((ref) => ref === API_KEYS_ARN || ref === TOKEN_KEYS_ARN)).to.equal(true);
    expect(Math.max(...timings)).to.be.below(4000);
    console.log(
      `      Secrets Manager stopped, warm container: 2xx in ${timings.map((t) => t.toFixed(0)).join(", ")} ms`,
    );
  });

  it("keeps a warm container serving while the endpoint accepts requests and never answers", async () => {
    await fake.start();
    const api = apiFor(containerDeps(200));
    const first = await api.send({ method: "POST", path: "/v1/sessions", key, body: {} });
    expect(first.statusCode, first.body).to.equal(201);
    fake.hang = true;
    try {
      await sleep(250);
      const timings: number[] = [];
      for (let i = 0; i < 2; i++) {
        const start = performance.now();
        const res = await api.send({ method: "GET", path: "/v1/sessions", key });
        timings.push(performance.now() - start);
        expect(res.statusCode, res.body).to.equal(200);
      }
      // Served, but each request past the TTL waits for the client to give up on its refresh.
      expect(Math.max(...timings)).to.be.below(5000);
      // A cold container has nothing to serve: a 503 once the client gives up, not a hang.
      const start = performance.now();
      const cold = await apiFor(containerDeps(200)).send({ method: "GET", path: "/v1/sessions", key });
      const coldMs = performance.now() - start;
      expectServiceUnavailable(cold);
      expect(coldMs).to.be.below(5000);
      console.log(
        `      Secrets Manager black-holed: warm container 200 after ${timings.map((t) => t.toFixed(0)).join(", ")} ms; ` +
          `cold container 503 after ${coldMs.toFixed(0)} ms`,
      );
    } finally {
      fake.hang = false;
      await fake.stop();
    }
  });

  it("answers 503 from a cold container while the endpoint is stopped, and serves once it is back", async () => {
    await fake.stop();
    const api = apiFor(containerDeps(200));
    for (const request of [
      { method: "POST", path: "/v1/sessions", key, body: {} },
      { method: "GET", path: "/v1/sessions", key },
    ]) {
      const start = performance.now();
      const res = await api.send(request);
      const elapsed = performance.now() - start;
      expectServiceUnavailable(res);
      expect(elapsed, "a cold container's 503 (ms)").to.be.below(4000);
    }
    const served = fake.served;
    await fake.start();
    const res = await api.send({ method: "POST", path: "/v1/sessions", key, body: {} });
    expect(res.statusCode, res.body).to.equal(201);
    expect(fake.served).to.be.greaterThan(served);
  });
});
