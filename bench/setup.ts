/**
 * What the phases measure, started before the first of them: Redis, a secrets file with one API
 * key per benchmark project, the functions serialized the way `pulumi up` uploads them, the stack
 * and the two floors (each its own process), the sessions they read, and the load targets.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { generateApiKey } from "../lib/apikeys";
import { CREATE_SESSION_LUA } from "../lib/store";
import { rotateTokenKeySet } from "../lib/tokens";
import { startRedisServer } from "../local/redis-server";
import { secretsPath, writeSecrets } from "../local/secrets-file";
import { apiRequest, type LoadTarget } from "./load";
import { runScript, startProcess, stopProcess, type Env, type Proc, type Teardown } from "./processes";
import type { SerializedFunction, SerializeManifest } from "./serialize-process";
import { BENCH, log, OUT_DIR, SETTINGS } from "./settings";
import { createBody, createScriptArgs, HANDLER_ENV, PROJECTS } from "./workload";

/** An admin Redis client that can run the create path's own Lua script. */
export type LuaClient = Redis & {
  wcCreateSession(...args: (string | number)[]): Promise<unknown>;
};

export type ApiKeys = Record<keyof typeof PROJECTS, string>;

/** The create script's first reply element when it made the session. */
const CREATED = 1;
const SEED_DEADLINE_MS = 60_000;

/**
 * Live sessions of the release project, made by the create script itself (no HTTP), handed out
 * one per release request.
 */
export class ReleasePool {
  readonly ids: string[] = [];
  /** How many ids were handed out. */
  cursor = 0;
  /** Releases sent to an id already released, because the load outran the pool. */
  reused = 0;

  constructor(private readonly admin: LuaClient) {}

  get remaining(): number {
    return this.ids.length - this.cursor;
  }

  /**
   * Runs the create script for `count` sessions, 1,000 per pipeline, and keeps the ids it created.
   * Seeding is set-up, not a request: its deadline is a minute away, since on a busy machine a
   * pipeline's last scripts can run well past a request's 250 ms, create nothing, and leave ids
   * whose release answers 404.
   */
  async seed(count: number): Promise<void> {
    for (let done = 0; done < count; done += 1000) {
      const pipeline = this.admin.pipeline() as unknown as {
        wcCreateSession(...args: (string | number)[]): void;
        exec(): Promise<[Error | null, unknown][]>;
      };
      const batch: string[] = [];
      for (let i = 0; i < Math.min(1000, count - done); i++) {
        const id = randomUUID();
        const now = Date.now();
        pipeline.wcCreateSession(...createScriptArgs(PROJECTS.release, id, now, now + SEED_DEADLINE_MS));
        batch.push(id);
      }
      const replies = await pipeline.exec();
      batch.forEach((id, i) => {
        const [error, reply] = replies[i];
        if (!error && Array.isArray(reply) && reply[0] === CREATED) this.ids.push(id);
      });
    }
  }

  /** The next id; under load, once the pool is used up, ids come round again (counted in `reused`). */
  nextCycling(): string {
    if (this.cursor >= this.ids.length) this.reused++;
    return this.ids[this.cursor++ % this.ids.length];
  }

  /** The next unused id. */
  next(): string {
    if (this.cursor >= this.ids.length) throw new Error("release pool exhausted");
    return this.ids[this.cursor++];
  }
}

export interface BenchContext {
  redisUrl: string;
  redisVersion: string;
  admin: LuaClient;
  apiKeys: ApiKeys;
  /** What the stack and the probes run with: HANDLER_ENV, Redis, the secrets file. */
  handlerEnv: Env;
  stackEnv: Env;
  manifest: SerializeManifest;
  /** The functions that serialized, each a file under OUT_DIR. */
  serialized: SerializedFunction[];
  serializationErrors: { function: string; error: string }[];
  stack: Proc;
  floorA: Proc;
  floorB: Proc;
  /** Sessions of the list project, for the list and retrieve runs. */
  listIds: string[];
  releases: ReleasePool;
  /** Redis's used_memory grew by `usedMemoryBytes` for `sessions` seeded sessions. */
  seeded: { sessions: number; usedMemoryBytes: number };
  /** The floors and the stack's routes, in the order the rounds run them. */
  targets: LoadTarget[];
}

/** Starts everything under `home`; what it starts is undone by `teardown`. */
export async function setUp(home: string, teardown: Teardown): Promise<BenchContext> {
  // ---- Redis, secrets, API keys
  const redisServer = await startRedisServer({ dir: join(home, "redis") });
  teardown.add(() => redisServer.stop());
  const redisUrl = redisServer.url;
  const apiKeys = {} as ApiKeys;
  const entries = [];
  for (const [name, projectId] of Object.entries(PROJECTS)) {
    const made = generateApiKey(projectId, { name: `bench ${name}` });
    apiKeys[name as keyof typeof PROJECTS] = made.key;
    entries.push(made.entry);
  }
  const secretsFile = secretsPath(home);
  writeSecrets(secretsFile, {
    // The queue project allows one live session: its creates wait (the handover phase).
    apiKeys: { keys: entries, projects: [{ id: PROJECTS.queue, concurrency: 1 }] },
    tokenKeys: rotateTokenKeySet(),
  });
  const admin = new Redis(redisUrl, { maxRetriesPerRequest: 1 }) as LuaClient;
  teardown.add(() => admin.disconnect());
  admin.defineCommand("wcCreateSession", { numberOfKeys: 4, lua: CREATE_SESSION_LUA });
  const redisVersion = /redis_version:(\S+)/.exec(await admin.info("server"))?.[1] ?? "unknown";

  const handlerEnv: Env = {
    ...process.env,
    ...HANDLER_ENV,
    REDIS_ENDPOINT: redisUrl,
    JWE_SECRET_ARN: `file:${secretsFile}#tokenKeys`,
    API_KEYS_SECRET_ARN: `file:${secretsFile}#apiKeys`,
  };
  const stackEnv = { ...handlerEnv, BENCH_HOME: home, REDIS_URL: redisUrl };

  // ---- serialize the functions (what `pulumi up` would upload)
  log("serializing the functions with pulumi.runtime.serializeFunction");
  rmSync(OUT_DIR, { recursive: true, force: true });
  mkdirSync(OUT_DIR, { recursive: true });
  await runScript("serialize-process", join(BENCH, "serialize-process.ts"), [OUT_DIR]);
  const manifest = JSON.parse(readFileSync(join(OUT_DIR, "manifest.json"), "utf8")) as SerializeManifest;
  const serialized = manifest.functions.filter((f) => !f.error);
  const serializationErrors = manifest.functions
    .filter((f) => f.error)
    .map((f) => ({ function: f.name, error: f.error! }));
  for (const failure of serializationErrors) log(`cannot serialize ${failure.function}:\n${failure.error}`);

  // ---- stack and floors, each in its own process
  log("starting the stack and the two floors");
  const floorEnv = { ...process.env, REDIS_URL: redisUrl };
  const [stack, floorA, floorB] = await Promise.all([
    startProcess("stack", join(BENCH, "stack-process.ts"), [], stackEnv),
    startProcess("floor A", join(BENCH, "floor-process.ts"), ["hset"], floorEnv),
    startProcess("floor B", join(BENCH, "floor-process.ts"), ["lua"], floorEnv),
  ]);

  // ---- data: 100 sessions to list and retrieve; a pool of live sessions to release
  log(`creating ${SETTINGS.listSessions} sessions for list and retrieve`);
  const listIds: string[] = [];
  for (let i = 0; i < SETTINGS.listSessions; i++) {
    const made = await apiRequest(
      `${stack.url}/v1/sessions`,
      "POST",
      apiKeys.list,
      createBody(PROJECTS.list),
    );
    if (made.status !== 201) throw new Error(`create for the list project answered ${made.status}`);
    listIds.push(String(made.json.id));
  }
  const releases = new ReleasePool(admin);
  const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await admin.info("memory"))?.[1]);
  const seedCount = 20_000;
  const memoryBefore = await usedMemory();
  await releases.seed(seedCount);
  const seeded = { sessions: releases.ids.length, usedMemoryBytes: (await usedMemory()) - memoryBefore };

  const ctx: Omit<BenchContext, "targets"> = {
    redisUrl,
    redisVersion,
    admin,
    apiKeys,
    handlerEnv,
    stackEnv,
    manifest,
    serialized,
    serializationErrors,
    stack,
    floorA,
    floorB,
    listIds,
    releases,
    seeded,
  };
  return { ...ctx, targets: loadTargets(ctx, redisServer.process.pid) };
}

/** Stops the stack and the floors (the phases after the load runs start their own processes). */
export async function stopLoadTargets(ctx: BenchContext): Promise<void> {
  await Promise.all([
    stopProcess(ctx.stack.child),
    stopProcess(ctx.floorA.child),
    stopProcess(ctx.floorB.child),
  ]);
}

function loadTargets(ctx: Omit<BenchContext, "targets">, redisPid: number | undefined): LoadTarget[] {
  const { apiKeys, stack, floorA, floorB, listIds, releases } = ctx;
  const json = { "content-type": "application/json" };
  const createJson = JSON.stringify(createBody(PROJECTS.create));
  const targets: Omit<LoadTarget, "redisPid">[] = [
    {
      key: "floorA",
      label: "floor A (1 HSET)",
      pid: floorA.pid,
      url: floorA.url,
      method: "POST",
      headers: json,
      body: createJson,
      paths: ["/v1/sessions"],
    },
    {
      key: "floorB",
      label: "floor B (create Lua)",
      pid: floorB.pid,
      url: floorB.url,
      method: "POST",
      headers: json,
      body: createJson,
      paths: ["/v1/sessions"],
    },
    {
      key: "create",
      label: "create",
      pid: stack.pid,
      url: stack.url,
      method: "POST",
      headers: { ...json, "x-bb-api-key": apiKeys.create },
      body: createJson,
      paths: ["/v1/sessions"],
    },
    {
      key: "retrieve",
      label: "retrieve",
      pid: stack.pid,
      url: stack.url,
      method: "GET",
      headers: { "x-bb-api-key": apiKeys.list },
      paths: listIds.map((id) => `/v1/sessions/${id}`),
    },
    {
      key: "list",
      label: `list (${SETTINGS.listSessions} sessions)`,
      pid: stack.pid,
      url: stack.url,
      method: "GET",
      headers: { "x-bb-api-key": apiKeys.list },
      paths: ["/v1/sessions"],
    },
    {
      key: "release",
      label: "release",
      pid: stack.pid,
      url: stack.url,
      method: "POST",
      headers: { ...json, "x-bb-api-key": apiKeys.release },
      body: JSON.stringify({ status: "REQUEST_RELEASE" }),
      paths: [],
      nextPath: () => `/v1/sessions/${releases.nextCycling()}`,
    },
  ];
  return targets.map((target) => ({ ...target, redisPid }));
}
