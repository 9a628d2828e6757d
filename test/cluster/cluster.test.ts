import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { Cluster, Redis } from "ioredis";
import type { HttpResult } from "../../lib/http";
import { keys, SESSION_EVENTS_CHANNEL } from "../../lib/store";
import type { RedisServer } from "../../local/redis-server";
import { apiFor, sleep, type Api } from "../reliability/api";
import { createTestWorld, uniqueProject, type TestWorld } from "../support/fixtures";
import { startOwnRedis } from "../support/redis";

const REDIS_CLI_HINT =
  "redis-cli was not found on PATH: the Redis Cluster tests need it to form the cluster. " +
  "Install redis-tools (Debian/Ubuntu: `sudo apt-get install -y redis-tools`; macOS: `brew install redis`).";

/** Runs redis-cli with a time limit; a missing binary fails with the install hint. */
function redisCli(args: string[], timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("redis-cli", args, { timeout: timeoutMs }, (error, stdout, stderr) => {
      if ((error as NodeJS.ErrnoException | null)?.code === "ENOENT")
        return reject(new Error(REDIS_CLI_HINT));
      if (error)
        return reject(new Error(`redis-cli ${args.join(" ")} failed: ${error.message}\n${stdout}${stderr}`));
      resolve(stdout);
    });
  });
}

/** A local Redis Cluster of three masters, formed by redis-cli, with a direct connection to each node. */
interface LocalCluster {
  servers: RedisServer[];
  nodes: Redis[];
  /** The port of the master serving `slot`. */
  portOfSlot(slot: number): number;
  stop(): Promise<void>;
}

async function startLocalCluster(): Promise<LocalCluster> {
  await redisCli(["--version"], 5000);
  const dir = mkdtempSync(join(tmpdir(), "wc-cluster-"));
  const servers: RedisServer[] = [];
  const nodes: Redis[] = [];
  const stop = async () => {
    for (const node of nodes) node.disconnect();
    await Promise.all(servers.map((server) => server.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 3; i++) {
      servers.push(
        await startOwnRedis([
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          join(dir, `nodes-${i}.conf`),
          "--cluster-node-timeout",
          "5000",
        ]),
      );
    }
    await redisCli([
      "--cluster",
      "create",
      ...servers.map((server) => `127.0.0.1:${server.port}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes",
    ]);
    for (const server of servers)
      nodes.push(new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: false }));
    // Every node must agree the cluster is up before a client may use it.
    for (let attempt = 0; ; attempt++) {
      const infos = await Promise.all(nodes.map((node) => node.call("CLUSTER", "INFO") as Promise<string>));
      if (infos.every((info) => info.includes("cluster_state:ok"))) break;
      if (attempt >= 200) throw new Error(`the cluster did not reach cluster_state:ok:\n${infos.join("\n")}`);
      await sleep(50);
    }
    const ranges = (await nodes[0].call("CLUSTER", "SLOTS")) as [number, number, [string, number, string]][];
    return {
      servers,
      nodes,
      portOfSlot(slot) {
        const range = ranges.find(([start, end]) => slot >= start && slot <= end);
        if (!range) throw new Error(`no master serves slot ${slot}`);
        return Number(range[2][1]);
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

describe("scale-out: the store on a real Redis Cluster (3 masters, REDIS_CLUSTER=true)", function () {
  this.timeout(60_000);
  let cluster: LocalCluster | undefined;
  let world: TestWorld;
  let api: Api;

  before(async () => {
    cluster = await startLocalCluster();
    world = await createTestWorld({
      redisUrl: `redis://127.0.0.1:${cluster.servers[0].port}`,
      env: { REDIS_CLUSTER: "true" },
    });
    api = apiFor(world.runtime);
  });

  after(async () => {
    await world?.close();
    await cluster?.stop();
  });

  /** Three projects whose hash tags land on the three different masters (bounded search). */
  async function projectsOnEveryShard(prefix: string): Promise<{ project: string; port: number }[]> {
    const byPort = new Map<number, string>();
    for (let i = 0; i < 500 && byPort.size < 3; i++) {
      const project = uniqueProject(prefix);
      const slot = Number(await cluster!.nodes[0].call("CLUSTER", "KEYSLOT", keys.active(project)));
      const port = cluster!.portOfSlot(slot);
      if (!byPort.has(port)) byPort.set(port, project);
    }
    expect(byPort.size, "projects found on distinct shards").to.equal(3);
    return [...byPort].map(([port, project]) => ({ project, port }));
  }

  const create = (key: string, body: unknown = {}, headers: Record<string, string> = {}) =>
    api.send({ method: "POST", path: "/v1/sessions", key, body, headers });
  const countStatus = (results: HttpResult[], status: number) =>
    results.filter((r) => r.statusCode === status).length;

  it("uses a cluster client and keeps every key of a project on its own shard", async () => {
    expect(await world.runtime.redis()).to.be.instanceOf(Cluster);
    const shards = await projectsOnEveryShard("shard");
    expect(new Set(shards.map((s) => s.port)).size).to.equal(3);
    for (const { project, port } of shards) {
      const key = world.addKey(project);
      const res = await create(
        key,
        { userMetadata: { shard: String(port) } },
        { "idempotency-key": "first" },
      );
      expect(res.statusCode, res.body).to.equal(201);
      const id = JSON.parse(res.body).id as string;
      const projectKeys = [
        keys.session(project, id),
        keys.active(project),
        keys.sessions(project),
        keys.idempotency(project, "first"),
      ];
      const owner = cluster!.nodes.find((node) => node.options.port === port)!;
      expect(await owner.exists(...projectKeys), `keys of ${project} on its master`).to.equal(
        projectKeys.length,
      );
      const got = await api.send({ method: "GET", path: `/v1/sessions/${id}`, key });
      expect(got.statusCode, got.body).to.equal(200);
      expect(JSON.parse(got.body).userMetadata).to.deep.equal({ shard: String(port) });
    }
    // Each master holds the keys of exactly one of the three projects (SCAN on a node sees only its own keys).
    for (const node of cluster!.nodes) {
      const projectsHere = new Set<string>();
      let cursor = "0";
      for (let round = 0; round < 1000; round++) {
        const [next, batch] = await node.scan(cursor, "MATCH", "wc:{shard-*", "COUNT", 1000);
        for (const k of batch) projectsHere.add(/^wc:\{([^}]+)\}/.exec(k)![1]);
        cursor = next;
        if (cursor === "0") break;
      }
      const expected = shards.filter((s) => s.port === node.options.port).map((s) => s.project);
      expect([...projectsHere]).to.deep.equal(expected);
    }
  });

  it("admits exactly the limit from 100 concurrent creates per project, lists them and frees a slot on release", async () => {
    const shards = await projectsOnEveryShard("burst");
    const apiKeys = shards.map(({ project }) => world.addKey(project, { concurrency: 5 }));
    const results = await Promise.all(
      apiKeys.map((key) => Promise.all(Array.from({ length: 100 }, () => create(key, { timeout: 600 })))),
    );
    const redis = await world.runtime.redis();
    const subscriber = new Redis({ host: "127.0.0.1", port: cluster!.servers[0].port });
    const events: { sessionId: string; projectId: string; type: string }[] = [];
    try {
      await subscriber.subscribe(SESSION_EVENTS_CHANNEL);
      subscriber.on("message", (_channel: string, message: string) => events.push(JSON.parse(message)));

      for (const [i, { project }] of shards.entries()) {
        expect(countStatus(results[i], 201), `201s for ${project}`).to.equal(5);
        expect(countStatus(results[i], 429), `429s for ${project}`).to.equal(95);
        expect(await redis.zcard(keys.active(project))).to.equal(5);
        const created = results[i]
          .filter((r) => r.statusCode === 201)
          .map((r) => JSON.parse(r.body).id as string);

        const listed = await api.send({ method: "GET", path: "/v1/sessions", key: apiKeys[i] });
        expect(listed.statusCode, listed.body).to.equal(200);
        const listedIds = (JSON.parse(listed.body) as { id: string }[]).map((s) => s.id);
        expect(listedIds.sort()).to.deep.equal([...created].sort());

        const released = await api.send({
          method: "POST",
          path: `/v1/sessions/${created[0]}`,
          key: apiKeys[i],
          body: { status: "REQUEST_RELEASE" },
        });
        expect(released.statusCode, released.body).to.equal(200);
        expect(JSON.parse(released.body).status).to.equal("COMPLETED");
        expect(await redis.zcard(keys.active(project))).to.equal(4);
        const refill = await Promise.all(Array.from({ length: 10 }, () => create(apiKeys[i])));
        expect(countStatus(refill, 201), "creates after one release").to.equal(1);
        expect(countStatus(refill, 429)).to.equal(9);
      }
      // The release events of all three shards reach a subscriber on any one node.
      for (let i = 0; i < 100 && events.length < 3; i++) await sleep(20);
      expect(events.map((e) => e.projectId).sort()).to.deep.equal(shards.map((s) => s.project).sort());
      expect(events.every((e) => e.type === "released")).to.equal(true);
    } finally {
      subscriber.disconnect();
    }
  });

  it("replays an idempotent create on every shard, refuses a changed body and makes one session of 20 retries", async () => {
    const shards = await projectsOnEveryShard("idem");
    for (const { project } of shards) {
      const key = world.addKey(project);
      const headers = { "idempotency-key": `order-${project}` };
      const first = await create(key, { timeout: 300 }, headers);
      expect(first.statusCode, first.body).to.equal(201);
      const again = await create(key, { timeout: 300 }, headers);
      expect(again.statusCode, again.body).to.equal(201);
      expect(again.headers["idempotent-replayed"]).to.equal("true");
      expect(JSON.parse(again.body).id).to.equal(JSON.parse(first.body).id);
      const changed = await create(key, { timeout: 301 }, headers);
      expect(changed.statusCode, changed.body).to.equal(409);

      const burst = await Promise.all(
        Array.from({ length: 20 }, () =>
          create(key, { keepAlive: true }, { "idempotency-key": `burst-${project}` }),
        ),
      );
      expect(countStatus(burst, 201)).to.equal(20);
      expect(new Set(burst.map((r) => JSON.parse(r.body).id)).size, "sessions made by 20 retries").to.equal(
        1,
      );
      expect(await (await world.runtime.redis()).zcard(keys.active(project))).to.equal(2);
    }
  });
  it("queues waiters first come, first served on every shard, hands each freed slot over and leaves no queue key", async () => {
    const shards = await projectsOnEveryShard("queue");
    const redis = await world.runtime.redis();
    for (const { project } of shards) {
      const key = world.addKey(project, { concurrency: 1 });
      const first = await create(key);
      expect(first.statusCode, first.body).to.equal(201);
      let holder = JSON.parse(first.body).id as string;
      const waiters: Promise<HttpResult>[] = [];
      for (let i = 0; i < 5; i++) {
        waiters.push(create(key, {}, { prefer: "wait=20" }));
        // Arrival order is fixed by waiting for each to be in the queue before the next comes.
        while ((await redis.zcard(keys.queue(project))) !== i + 1) await sleep(5);
      }
      const order: number[] = [];
      for (let i = 0; i < 5; i++) {
        await world.runtime.store.release(project, holder, Date.now());
        const next = await Promise.race(
          waiters
            .map((answer, index) => answer.then(() => index))
            .filter((_, index) => !order.includes(index)),
        );
        order.push(next);
        const answer = await waiters[next];
        expect(answer.statusCode, answer.body).to.equal(201);
        holder = JSON.parse(answer.body).id;
        expect(await redis.zcount(keys.active(project), `(${Date.now()}`, "+inf")).to.equal(1);
      }
      expect(order).to.deep.equal([0, 1, 2, 3, 4]);
      // Asked of every master: a cluster client would send KEYS to any one node.
      const left = (await Promise.all(cluster!.nodes.map((node) => node.keys(`wc:{${project}}:*`)))).flat();
      expect(left, "the project's keys").to.include(keys.active(project));
      expect(left.filter((k) => /:(queue|grant)/.test(k))).to.deep.equal([]);
    }
  });
});
