/**
 * `npm run bench`: the API's speed and size against the physical floor, in one run.
 *
 * 1. Throughput and latency (autocannon, loopback) at 1, 8 and 32 connections of create,
 *    retrieve, list and release on the local stack (its own process), interleaved with two
 *    floors (bare node:http servers, each its own process): A does one HSET of a session-sized
 *    record, B runs the create path's own Lua script. Redis round trips per request via MONITOR.
 * 2. Cold start: 20 fresh processes per function, each loading the serialized package
 *    (`serializeFunction(factory, {isFactoryFunction: true})`, what `pulumi up` uploads) and
 *    answering one request; package sizes and what dominates them.
 * 3. Redis memory per session; handler heap before and after 10,000 requests.
 * 4. Results: a table on stdout, bench/results.json and docs/benchmarks.md. A missed throughput
 *    target is profiled (`--cpu-prof`) and its top frames printed.
 *
 * Everything runs on 127.0.0.1 and everything started is stopped at the end.
 * BENCH_DURATION (seconds per run, default 3), BENCH_ROUNDS (default 2), BENCH_COLD_RUNS
 * (default 20) and BENCH_KEEP=1 (keep bench/.out) tune it.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { arch, cpus, loadavg, platform, release, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import autocannon from "autocannon";
import { Redis } from "ioredis";
import { generateApiKey } from "../lib/apikeys";
import { CREATE_SESSION_LUA, keys } from "../lib/store";
import { rotateTokenKeySet } from "../lib/tokens";
import { startRedisServer, type RedisServer } from "../local/redis-server";
import { secretsPath, writeSecrets } from "../local/secrets-file";
import { apiEvent } from "../test/support/fixtures";
import { measurePackage, packageOf, requiredPackageDirs, type SizeReport } from "./package-size";
import { measurePieces, type PieceCost } from "./pieces";
import { summarizeProfile, type ProfileSummary } from "./profile";
import { bytes, markdownTable, median, ms, percentile, round, textTable, type Cell } from "./report";
import type { SerializeManifest } from "./serialize-process";
import { createBody, createScriptArgs, HANDLER_ENV, PROJECTS } from "./workload";

const ROOT = resolve(__dirname, "..");
const BENCH = join(ROOT, "bench");
const OUT_DIR = join(BENCH, ".out");
const PROFILE_DIR = join(BENCH, ".cpuprofile");
const TS_NODE = ["-r", "ts-node/register/transpile-only"];

function envNumber(name: string, fallback: number): number {
  const value = Number(process.env[name]);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

const SETTINGS = {
  durationS: envNumber("BENCH_DURATION", 2),
  rounds: envNumber("BENCH_ROUNDS", 3),
  warmupS: 1.5,
  connections: [1, 8, 32],
  coldRuns: envNumber("BENCH_COLD_RUNS", 20),
  heapRequests: 10_000,
  roundTripRequests: 20,
  profileS: 4,
  listSessions: 100,
};

const TARGETS = {
  createVsFloorA: 0.4,
  createVsFloorB: 0.7,
  createP99Ms: 10,
  retrieveVsFloorA: 0.8,
  roundTrips: 1,
  coldStartMs: 150,
  packageBytes: 3 * 1024 * 1024,
  sessionBytes: 1024,
  heapGrowthBytes: 1024 * 1024,
};

const log = (message: string) => process.stderr.write(`[bench] ${message}\n`);
const sleep = (msDelay: number) => new Promise((done) => setTimeout(done, msDelay));

// ---------------------------------------------------------------- child processes

interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  url: string;
}

const running = new Set<ChildProcess>();

/**
 * A `node` child with an IPC channel, tracked in `running` (so it is ended with the run), whose
 * last 4,000 characters of stderr `stderr()` returns for error messages.
 */
function spawnTracked(
  nodeArgs: string[],
  env: Record<string, string | undefined>,
): { child: ChildProcess; stderr: () => string } {
  const child = spawn(process.execPath, nodeArgs, {
    cwd: ROOT,
    env,
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  running.add(child);
  let stderr = "";
  child.stderr?.on("data", (data: Buffer) => {
    stderr = (stderr + data.toString()).slice(-4000);
  });
  return { child, stderr: () => stderr };
}

function startProcess(
  name: string,
  script: string,
  args: string[],
  env: Record<string, string | undefined>,
  execArgv: string[] = TS_NODE,
): Promise<Proc> {
  const { child, stderr } = spawnTracked([...execArgv, script, ...args], env);
  child.once("exit", () => running.delete(child));
  return new Promise((resolveReady, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name} did not start within 60 s: ${stderr()}`)),
      60_000,
    );
    child.on("message", (message: { type?: string; url?: string }) => {
      if (message?.type === "ready") {
        clearTimeout(timer);
        resolveReady({ name, child, pid: child.pid!, url: message.url! });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before it was ready: ${stderr()}`));
    });
  });
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((done) => {
    const timer = setTimeout(() => done(false), timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      done(true);
    });
  });
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  if (child.connected) child.send({ type: "stop" });
  else child.kill("SIGTERM");
  if (!(await waitExit(child, 10_000))) {
    child.kill("SIGKILL");
    await waitExit(child, 5_000);
  }
}

let markId = 0;
/** The child's monotonic clock in microseconds (the clock its CPU profile uses). */
function mark(proc: Proc): Promise<number> {
  const id = ++markId;
  return new Promise((done) => {
    const listener = (message: { type?: string; id?: number; us?: number }) => {
      if (message?.type === "mark" && message.id === id) {
        proc.child.off("message", listener);
        done(message.us!);
      }
    };
    proc.child.on("message", listener);
    proc.child.send({ type: "mark", id });
  });
}

/** One fresh `node` process running bench/probe.js; resolves with what it reports. */
function probe<T>(
  args: string[],
  env: Record<string, string | undefined>,
  execArgv: string[] = [],
): Promise<T & { wallMs: number }> {
  const t0 = performance.now();
  const { child, stderr } = spawnTracked([...execArgv, join(BENCH, "probe.js"), ...args], env);
  return new Promise((done, reject) => {
    let result: (T & { error?: string }) | undefined;
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("message", (message: T & { error?: string }) => {
      result = message;
    });
    child.once("exit", () => {
      clearTimeout(timer);
      running.delete(child);
      if (!result) reject(new Error(`probe ${args.join(" ")} reported nothing: ${stderr()}`));
      else if (result.error) reject(new Error(`probe ${args[0]} failed: ${result.error}`));
      else done({ ...result, wallMs: performance.now() - t0 });
    });
  });
}

// ---------------------------------------------------------------- CPU accounting

let clockTicks = 100;
try {
  clockTicks = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
} catch {
  // not Linux: CPU columns stay empty
}

/** User + system CPU of a process, in ms (Linux /proc), or undefined where unavailable. */
function cpuMsOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- load runs

interface LoadTarget {
  key: string;
  label: string;
  pid: number;
  url: string;
  method: "GET" | "POST";
  headers: Record<string, string>;
  body?: string;
  /** Static paths, cycled (each connection walks the list). */
  paths: string[];
  /** A fresh path per request, shared by all connections (release: one id per request). */
  nextPath?: () => string;
}

interface RunSample {
  connections: number;
  elapsedS: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  rps: number;
  latencies: number[];
  serverCpuMs?: number;
  redisCpuMs?: number;
  loadgenCpuMs: number;
}

let redisPid: number | undefined;

function runLoad(target: LoadTarget, connections: number, durationS: number): Promise<RunSample> {
  const latencies: number[] = [];
  const server0 = cpuMsOf(target.pid);
  const redis0 = cpuMsOf(redisPid);
  const loadgen0 = process.cpuUsage();
  const t0 = performance.now();
  const options: autocannon.Options = {
    url: target.url,
    connections,
    duration: durationS,
    timeout: 10,
    method: target.method,
    headers: target.headers,
    body: target.body,
  };
  if (target.nextPath) {
    const next = target.nextPath;
    options.requests = [{ setupRequest: (request) => ({ ...request, path: next() }) }];
  } else {
    options.requests = target.paths.map((path) => ({ method: target.method, path }));
  }
  return new Promise((done, reject) => {
    const instance = autocannon(options, (error, result) => {
      if (error) return reject(error);
      const elapsedS = (performance.now() - t0) / 1000;
      const server1 = cpuMsOf(target.pid);
      const redis1 = cpuMsOf(redisPid);
      const loadgen = process.cpuUsage(loadgen0);
      const ok = result["2xx"];
      done({
        connections,
        elapsedS,
        ok,
        non2xx: result.non2xx,
        errors: result.errors,
        timeouts: result.timeouts,
        rps: ok / elapsedS,
        latencies,
        serverCpuMs: server0 !== undefined && server1 !== undefined ? server1 - server0 : undefined,
        redisCpuMs: redis0 !== undefined && redis1 !== undefined ? redis1 - redis0 : undefined,
        loadgenCpuMs: (loadgen.user + loadgen.system) / 1000,
      });
    });
    instance.on("response", (_client, statusCode, _bytes, responseTime) => {
      if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
    });
  });
}

/**
 * Open-loop load: requests leave at evenly spaced times (`rate` per second) over at most
 * `connections` keep-alive sockets, whatever the answers do; latency is counted from when each
 * request was due, so queueing behind a slow answer is in it. (autocannon's own rate limit sends
 * each second's quota in one burst, which measures bursts, not a steady load.)
 */
async function pacedLoad(
  target: LoadTarget,
  connections: number,
  durationS: number,
  rate: number,
): Promise<RunSample> {
  const agent = new HttpAgent({ keepAlive: true, maxSockets: connections });
  const url = new URL(target.url);
  const latencies: number[] = [];
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let pending = 0;
  const server0 = cpuMsOf(target.pid);
  const redis0 = cpuMsOf(redisPid);
  const loadgen0 = process.cpuUsage();
  const send = (due: number) => {
    pending++;
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        method: target.method,
        path: target.nextPath ? target.nextPath() : target.paths[0],
        headers: target.headers,
        agent,
      },
      (res) => {
        res.resume();
        res.on("end", () => {
          pending--;
          const code = res.statusCode ?? 0;
          if (code >= 200 && code < 300) {
            ok++;
            latencies.push(performance.now() - due);
          } else non2xx++;
        });
      },
    );
    req.on("error", () => {
      pending--;
      errors++;
    });
    req.end(target.body);
  };
  const total = Math.round(rate * durationS);
  const t0 = performance.now();
  let sent = 0;
  await new Promise<void>((done) => {
    const tick = () => {
      const elapsed = performance.now() - t0;
      const due = Math.min(total, Math.floor((elapsed * rate) / 1000) + 1);
      for (; sent < due; sent++) send(t0 + (sent * 1000) / rate);
      if (sent < total) setTimeout(tick, 1);
      else done();
    };
    tick();
  });
  const deadline = performance.now() + 10_000;
  while (pending > 0 && performance.now() < deadline) await sleep(5);
  const elapsedS = (performance.now() - t0) / 1000;
  agent.destroy();
  const server1 = cpuMsOf(target.pid);
  const redis1 = cpuMsOf(redisPid);
  const loadgen = process.cpuUsage(loadgen0);
  return {
    connections,
    elapsedS,
    ok,
    non2xx,
    errors,
    timeouts: pending,
    rps: ok / elapsedS,
    latencies,
    serverCpuMs: server0 !== undefined && server1 !== undefined ? server1 - server0 : undefined,
    redisCpuMs: redis0 !== undefined && redis1 !== undefined ? redis1 - redis0 : undefined,
    loadgenCpuMs: (loadgen.user + loadgen.system) / 1000,
  };
}

interface Aggregate {
  target: string;
  label: string;
  connections: number;
  /** Median over rounds of this run's req/s divided by the adjacent floor run's (same round). */
  vsFloorA?: number;
  vsFloorB?: number;
  rps: number;
  rpsByRound: number[];
  p50: number;
  p99: number;
  mean: number;
  ok: number;
  non2xx: number;
  errors: number;
  serverCpuUsPerReq?: number;
  redisCpuUsPerReq?: number;
  loadgenCpuUsPerReq: number;
}

function aggregate(target: LoadTarget, samples: RunSample[]): Aggregate {
  const all = samples.flatMap((s) => s.latencies).sort((a, b) => a - b);
  const ok = samples.reduce((sum, s) => sum + s.ok, 0);
  const sumOf = (pick: (s: RunSample) => number | undefined) =>
    samples.every((s) => pick(s) !== undefined) ? samples.reduce((sum, s) => sum + pick(s)!, 0) : undefined;
  const perReq = (totalMs: number | undefined) =>
    totalMs === undefined || ok === 0 ? undefined : round((totalMs * 1000) / ok, 0);
  return {
    target: target.key,
    label: target.label,
    connections: samples[0].connections,
    rps: round(median(samples.map((s) => s.rps)), 0),
    rpsByRound: samples.map((s) => round(s.rps, 0)),
    p50: round(percentile(all, 50), 3),
    p99: round(percentile(all, 99), 3),
    mean: round(all.reduce((sum, v) => sum + v, 0) / Math.max(1, all.length), 3),
    ok,
    non2xx: samples.reduce((sum, s) => sum + s.non2xx, 0),
    errors: samples.reduce((sum, s) => sum + s.errors + s.timeouts, 0),
    serverCpuUsPerReq: perReq(sumOf((s) => s.serverCpuMs)),
    redisCpuUsPerReq: perReq(sumOf((s) => s.redisCpuMs)),
    loadgenCpuUsPerReq: perReq(sumOf((s) => s.loadgenCpuMs))!,
  };
}

// ---------------------------------------------------------------- HTTP helpers and events

async function request(
  url: string,
  method: string,
  apiKey: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(url, {
    method,
    headers: { "x-bb-api-key": apiKey, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

// ---------------------------------------------------------------- the run

type LuaClient = Redis & {
  wcCreateSession(...args: (string | number)[]): Promise<unknown>;
};

interface ColdStart {
  function: string;
  runs: number;
  medianMs: number;
  p90Ms: number;
  medianLoadMs: number;
  medianFirstCallMs: number;
  medianSinceProcessStartMs: number;
  medianWallMs: number;
  statusCodes: number[];
}

interface HeapResult {
  function: string;
  warmupRequests: number;
  requests: number;
  heapAfterWarmup: number;
  heapCheckpoints: number[];
  growthBytes: number;
  statuses: Record<string, number>;
}

interface TargetCheck {
  name: string;
  target: string;
  measured: string;
  met: boolean;
}

async function main(): Promise<void> {
  const started = performance.now();
  const loadAtStart = loadavg().map((x) => round(x, 2));
  if (loadAtStart[0] > 0.5 * cpus().length) {
    log(`warning: load average ${loadAtStart.join(" ")} before the run: other work will skew the figures`);
  }
  const home = mkdtempSync(join(tmpdir(), "wc-bench-"));
  let redisServer: RedisServer | undefined;
  let admin: LuaClient | undefined;
  const cleanup = async () => {
    for (const child of [...running]) await stopProcess(child);
    admin?.disconnect();
    await redisServer?.stop();
    rmSync(home, { recursive: true, force: true });
    if (process.env.BENCH_KEEP !== "1") rmSync(OUT_DIR, { recursive: true, force: true });
  };
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    log("interrupted: stopping everything started");
    void cleanup().then(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    // ---- Redis, secrets, API keys
    redisServer = await startRedisServer({ dir: join(home, "redis") });
    redisPid = redisServer.process.pid;
    const redisUrl = redisServer.url;
    const apiKeys: Record<keyof typeof PROJECTS, string> = {} as Record<keyof typeof PROJECTS, string>;
    const entries = [];
    for (const [name, projectId] of Object.entries(PROJECTS)) {
      const made = generateApiKey(projectId, { name: `bench ${name}` });
      apiKeys[name as keyof typeof PROJECTS] = made.key;
      entries.push(made.entry);
    }
    const secretsFile = secretsPath(home);
    writeSecrets(secretsFile, { apiKeys: { keys: entries }, tokenKeys: rotateTokenKeySet() });
    admin = new Redis(redisUrl, { maxRetriesPerRequest: 1 }) as LuaClient;
    admin.defineCommand("wcCreateSession", { numberOfKeys: 4, lua: CREATE_SESSION_LUA });
    const redisVersion = /redis_version:(\S+)/.exec(await admin.info("server"))?.[1] ?? "unknown";

    const handlerEnv: Record<string, string | undefined> = {
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
    await new Promise<void>((done, reject) => {
      const child = spawn(process.execPath, [...TS_NODE, join(BENCH, "serialize-process.ts"), OUT_DIR], {
        cwd: ROOT,
        stdio: ["ignore", "ignore", "inherit"],
      });
      running.add(child);
      child.once("exit", (code) => {
        running.delete(child);
        if (code === 0) done();
        else reject(new Error(`serialize-process exited with ${code}`));
      });
    });
    const manifest = JSON.parse(readFileSync(join(OUT_DIR, "manifest.json"), "utf8")) as SerializeManifest;
    const serialized = manifest.functions.filter((f) => !f.error);
    const serializationErrors = manifest.functions
      .filter((f) => f.error)
      .map((f) => ({ function: f.name, error: f.error! }));
    for (const failure of serializationErrors) log(`cannot serialize ${failure.function}:\n${failure.error}`);

    // ---- stack and floors, each in its own process
    log("starting the stack and the two floors");
    const [stack, floorA, floorB] = await Promise.all([
      startProcess("stack", join(BENCH, "stack-process.ts"), [], stackEnv),
      startProcess("floor A", join(BENCH, "floor-process.ts"), ["hset"], {
        ...process.env,
        REDIS_URL: redisUrl,
      }),
      startProcess("floor B", join(BENCH, "floor-process.ts"), ["lua"], {
        ...process.env,
        REDIS_URL: redisUrl,
      }),
    ]);

    // ---- data: 100 sessions to list and retrieve; a pool of live sessions to release
    log(`creating ${SETTINGS.listSessions} sessions for list and retrieve`);
    const listIds: string[] = [];
    for (let i = 0; i < SETTINGS.listSessions; i++) {
      const made = await request(`${stack.url}/v1/sessions`, "POST", apiKeys.list, createBody(PROJECTS.list));
      if (made.status !== 201) throw new Error(`create for the list project answered ${made.status}`);
      listIds.push(String(made.json.id));
    }
    const releasePool: string[] = [];
    let releaseCursor = 0;
    let releasesReused = 0;
    const seed = async (count: number) => {
      for (let done = 0; done < count; done += 1000) {
        const pipeline = admin!.pipeline() as unknown as {
          wcCreateSession(...args: (string | number)[]): void;
          exec(): Promise<unknown>;
        };
        for (let i = 0; i < Math.min(1000, count - done); i++) {
          const id = randomUUID();
          pipeline.wcCreateSession(...createScriptArgs(PROJECTS.release, id, Date.now()));
          releasePool.push(id);
        }
        await pipeline.exec();
      }
    };
    const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await admin!.info("memory"))?.[1]);
    const seedCount = 20_000;
    const memoryBefore = await usedMemory();
    await seed(seedCount);
    const seededBytesPerSession = (await usedMemory()) - memoryBefore;

    // ---- targets
    const json = { "content-type": "application/json" };
    const createJson = JSON.stringify(createBody(PROJECTS.create));
    const targets: LoadTarget[] = [
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
        nextPath: () => {
          if (releaseCursor >= releasePool.length) releasesReused++;
          return `/v1/sessions/${releasePool[releaseCursor++ % releasePool.length]}`;
        },
      },
    ];
    let releaseRpsSeen = 6000;
    const topUpReleasePool = async (seconds: number) => {
      const need = Math.ceil(releaseRpsSeen * seconds * 1.5) - (releasePool.length - releaseCursor);
      if (need > 0) await seed(need);
    };

    // ---- warm-up, then interleaved rounds
    log("warming up every target");
    for (const target of targets) {
      if (target.key === "release") await topUpReleasePool(SETTINGS.warmupS);
      await runLoad(target, 8, SETTINGS.warmupS);
    }
    const samples = new Map<string, RunSample[]>();
    const totalRuns = SETTINGS.rounds * SETTINGS.connections.length * targets.length;
    let runNo = 0;
    for (let roundNo = 0; roundNo < SETTINGS.rounds; roundNo++) {
      // Odd rounds run the targets in reverse order, so drift over the run hits all alike.
      const order = roundNo % 2 === 0 ? targets : [...targets].reverse();
      for (const connections of SETTINGS.connections) {
        for (const target of order) {
          runNo++;
          if (target.key === "release") await topUpReleasePool(SETTINGS.durationS);
          const sample = await runLoad(target, connections, SETTINGS.durationS);
          if (target.key === "release") releaseRpsSeen = Math.max(releaseRpsSeen, sample.rps);
          const key = `${target.key}@${connections}`;
          samples.set(key, [...(samples.get(key) ?? []), sample]);
          log(
            `run ${runNo}/${totalRuns}: ${target.label} c=${connections}: ${Math.round(sample.rps)} req/s` +
              (sample.non2xx + sample.errors > 0
                ? ` (${sample.non2xx} non-2xx, ${sample.errors} errors)`
                : ""),
          );
        }
      }
    }
    const results: Aggregate[] = [];
    for (const target of targets) {
      for (const connections of SETTINGS.connections) {
        results.push(aggregate(target, samples.get(`${target.key}@${connections}`)!));
      }
    }
    const at = (key: string, connections: number) =>
      results.find((r) => r.target === key && r.connections === connections)!;
    // Ratios pair each run with the floor run of the same round (minutes apart at most), and take
    // the median over rounds: other load on the machine then moves both sides of a ratio alike.
    const ratio = (key: string, floor: string, connections: number) => {
      const mine = samples.get(`${key}@${connections}`)!;
      const theirs = samples.get(`${floor}@${connections}`)!;
      return round(median(mine.map((s, i) => s.rps / theirs[i].rps)), 3);
    };
    for (const r of results) {
      r.vsFloorA = ratio(r.target, "floorA", r.connections);
      r.vsFloorB = ratio(r.target, "floorB", r.connections);
    }
    const c = Math.max(...SETTINGS.connections);

    // ---- create's latency at a fixed offered load (open loop), half its closed-loop maximum: with
    // c connections always busy, latency is c / throughput (Little's law), not the service time.
    const createTarget = targets.find((t) => t.key === "create")!;
    const openRate = Math.max(1, Math.round(at("create", c).rps / 2));
    log(`create at a steady ${openRate} req/s (open loop) over up to ${c} connections`);
    const openLoop = {
      ...aggregate(createTarget, [await pacedLoad(createTarget, c, SETTINGS.durationS * 2, openRate)]),
      target: "createOpenLoop",
      label: `create, ${openRate} req/s offered`,
    };
    results.push(openLoop);

    // ---- Redis round trips per request (MONITOR: commands the stack sends vs run inside scripts)
    log("counting Redis round trips with MONITOR");
    const monitorClient = new Redis(redisUrl);
    const monitor = await monitorClient.monitor();
    type Tally = {
      requests: number;
      client: number;
      scripted: number;
      reads: number;
      commands: Record<string, number>;
    };
    /** Redis's count of socket reads: a pipeline arrives in one read, so this counts round trips. */
    const readsProcessed = async () =>
      Number(/total_reads_processed:(\d+)/.exec(await admin!.info("stats"))?.[1]);
    const tallies: Record<string, Tally> = {};
    let counting: Tally | undefined;
    monitor.on("monitor", (_time: string, args: string[], source: string) => {
      if (!counting) return;
      if (source === "lua") counting.scripted++;
      else {
        counting.client++;
        const name = String(args[0]).toLowerCase();
        counting.commands[name] = (counting.commands[name] ?? 0) + 1;
      }
    });
    const roundTripRoutes: { name: string; send: () => Promise<number> }[] = [
      {
        name: "create",
        send: async () =>
          (await request(`${stack.url}/v1/sessions`, "POST", apiKeys.create, createBody(PROJECTS.create)))
            .status,
      },
      {
        name: "retrieve",
        send: async () =>
          (await request(`${stack.url}/v1/sessions/${listIds[0]}`, "GET", apiKeys.list)).status,
      },
      {
        name: "release",
        send: async () => {
          if (releaseCursor >= releasePool.length) await seed(100);
          const id = releasePool[releaseCursor++];
          return (
            await request(`${stack.url}/v1/sessions/${id}`, "POST", apiKeys.release, {
              status: "REQUEST_RELEASE",
            })
          ).status;
        },
      },
      {
        name: "list",
        send: async () => (await request(`${stack.url}/v1/sessions`, "GET", apiKeys.list)).status,
      },
    ];
    for (const route of roundTripRoutes) {
      await route.send(); // warm (connections, script cache)
      await sleep(100);
      const tally: Tally = { requests: 0, client: 0, scripted: 0, reads: 0, commands: {} };
      const reads0 = await readsProcessed();
      counting = tally;
      for (let i = 0; i < SETTINGS.roundTripRequests; i++) {
        const status = await route.send();
        if (status < 200 || status >= 300) throw new Error(`${route.name} answered ${status} while counting`);
        tally.requests++;
      }
      await sleep(200);
      counting = undefined;
      // The second INFO's own read is in the delta.
      tally.reads = (await readsProcessed()) - reads0 - 1;
      tallies[route.name] = tally;
    }
    monitor.disconnect();
    monitorClient.disconnect();
    const roundTrips = Object.entries(tallies).map(([name, t]) => ({
      route: name,
      clientCommandsPerRequest: round(t.client / t.requests, 2),
      readsPerRequest: round(t.reads / t.requests, 2),
      scriptedCommandsPerRequest: round(t.scripted / t.requests, 2),
      commands: Object.fromEntries(Object.entries(t.commands).map(([c, n]) => [c, round(n / t.requests, 2)])),
    }));

    // ---- Redis memory per session
    log("measuring Redis memory per session");
    const memoryUsage = async (key: string) =>
      Number(await admin!.call("MEMORY", "USAGE", key, "SAMPLES", "0"));
    const createdIds = await admin.zrange(keys.active(PROJECTS.create), "0", "199");
    let recordSum = 0;
    for (const id of createdIds) recordSum += await memoryUsage(keys.session(PROJECTS.create, id));
    const sampleRecordKey = keys.session(PROJECTS.create, createdIds[0]);
    const recordEncoding = String(await admin.call("OBJECT", "ENCODING", sampleRecordKey));
    const recordFields = await admin.hlen(sampleRecordKey);
    const released = releasePool.slice(0, Math.min(200, releaseCursor));
    let releasedSum = 0;
    for (const id of released) releasedSum += await memoryUsage(keys.session(PROJECTS.release, id));
    const indexPerEntry = async (projectId: string) => {
      let total = 0;
      let entries = 0;
      const encodings: string[] = [];
      for (const key of [keys.active(projectId), keys.sessions(projectId)]) {
        const card = await admin!.zcard(key);
        if (card === 0) continue;
        total += (await memoryUsage(key)) / card;
        entries = Math.max(entries, card);
        encodings.push(String(await admin!.call("OBJECT", "ENCODING", key)));
      }
      return { bytesPerSession: round(total, 1), entries, encodings: [...new Set(encodings)].join("/") };
    };
    const smallIndex = await indexPerEntry(PROJECTS.list);
    const largeIndex = await indexPerEntry(PROJECTS.create);
    const recordBytes = round(recordSum / createdIds.length, 1);
    const memory = {
      recordBytes,
      recordEncoding,
      recordFields,
      releasedRecordBytes: released.length ? round(releasedSum / released.length, 1) : undefined,
      indexSmallProject: smallIndex,
      indexLargeProject: largeIndex,
      perSessionSmallProject: round(recordBytes + smallIndex.bytesPerSession, 0),
      perSessionLargeProject: round(recordBytes + largeIndex.bytesPerSession, 0),
      usedMemoryPerSeededSession: round(seededBytesPerSession / seedCount, 0),
    };

    // ---- stop the load targets
    await Promise.all([stopProcess(stack.child), stopProcess(floorA.child), stopProcess(floorB.child)]);

    // ---- verdicts on throughput, and profiles of what missed
    const createRatioA = at("create", c).vsFloorA!;
    const createRatioB = at("create", c).vsFloorB!;
    const retrieveRatioA = at("retrieve", c).vsFloorA!;
    // create is always profiled (the route the floors measure), list too (by far the costliest).
    const toProfile = new Set<string>(["create", "list"]);
    if (retrieveRatioA < TARGETS.retrieveVsFloorA) toProfile.add("retrieve");
    const profiles: Record<string, ProfileSummary> = {};
    mkdirSync(PROFILE_DIR, { recursive: true });
    for (const key of toProfile) {
      log(`profiling ${key} at ${c} connections (--cpu-prof)`);
      const name = `${key}.cpuprofile`;
      rmSync(join(PROFILE_DIR, name), { force: true });
      const proc = await startProcess("profiled stack", join(BENCH, "stack-process.ts"), [], stackEnv, [
        ...TS_NODE,
        "--cpu-prof",
        `--cpu-prof-dir=${PROFILE_DIR}`,
        `--cpu-prof-name=${name}`,
      ]);
      const target = { ...targets.find((t) => t.key === key)!, url: proc.url, pid: proc.pid };
      await runLoad(target, c, SETTINGS.warmupS);
      const fromUs = await mark(proc);
      await runLoad(target, c, SETTINGS.profileS);
      const toUs = await mark(proc);
      await stopProcess(proc.child);
      profiles[key] = summarizeProfile(join(PROFILE_DIR, name), ROOT, { fromUs, toUs });
    }

    // ---- cold start: fresh processes loading the serialized packages
    const coldEvents: Record<string, () => unknown> = {
      "create-session": () =>
        apiEvent({
          method: "POST",
          path: "/v1/sessions",
          routePath: "/v1/sessions",
          headers: { "x-bb-api-key": apiKeys.probe },
          body: createBody(PROJECTS.probe),
        }),
      "list-sessions": () =>
        apiEvent({
          method: "GET",
          path: "/v1/sessions",
          routePath: "/v1/sessions",
          headers: { "x-bb-api-key": apiKeys.list },
        }),
      "get-session": () =>
        apiEvent({
          method: "GET",
          path: `/v1/sessions/${listIds[1]}`,
          routePath: "/v1/sessions/{id}",
          headers: { "x-bb-api-key": apiKeys.list },
          pathParameters: { id: listIds[1] },
        }),
      "update-session": () => {
        if (releaseCursor >= releasePool.length) throw new Error("release pool exhausted");
        const id = releasePool[releaseCursor++];
        return apiEvent({
          method: "POST",
          path: `/v1/sessions/${id}`,
          routePath: "/v1/sessions/{id}",
          headers: { "x-bb-api-key": apiKeys.release },
          body: { status: "REQUEST_RELEASE" },
          pathParameters: { id },
        });
      },
      "session-debug": () =>
        apiEvent({
          method: "GET",
          path: `/v1/sessions/${listIds[2]}/debug`,
          routePath: "/v1/sessions/{id}/debug",
          headers: { "x-bb-api-key": apiKeys.list },
          pathParameters: { id: listIds[2] },
        }),
      fallback: () =>
        apiEvent({
          method: "GET",
          path: "/v1/unknown",
          routePath: "$default",
          headers: { "x-bb-api-key": apiKeys.list },
        }),
    };
    if (releasePool.length - releaseCursor < SETTINGS.coldRuns * 2) await seed(SETTINGS.coldRuns * 2);
    const coldStarts: ColdStart[] = [];
    for (const fn of serialized) {
      const makeEvent = coldEvents[fn.name];
      if (!makeEvent) {
        log(`no cold-start event for ${fn.name}; skipped`);
        continue;
      }
      log(`cold start: ${fn.name} x ${SETTINGS.coldRuns}`);
      type Cold = {
        loadMs: number;
        firstCallMs: number;
        totalMs: number;
        sinceProcessStartMs: number;
        statusCode: number;
      };
      const runs: (Cold & { wallMs: number })[] = [];
      for (let i = 0; i < SETTINGS.coldRuns; i++) {
        runs.push(
          await probe<Cold>(["cold", join(ROOT, fn.file)], {
            ...handlerEnv,
            BENCH_EVENTS: JSON.stringify([makeEvent()]),
          }),
        );
      }
      const totals = runs.map((r) => r.totalMs).sort((a, b) => a - b);
      coldStarts.push({
        function: fn.name,
        runs: runs.length,
        medianMs: round(median(totals), 1),
        p90Ms: round(percentile(totals, 90), 1),
        medianLoadMs: round(median(runs.map((r) => r.loadMs)), 1),
        medianFirstCallMs: round(median(runs.map((r) => r.firstCallMs)), 1),
        medianSinceProcessStartMs: round(median(runs.map((r) => r.sinceProcessStartMs)), 1),
        medianWallMs: round(median(runs.map((r) => r.wallMs)), 1),
        statusCodes: [...new Set(runs.map((r) => r.statusCode))],
      });
    }

    // ---- what the cold start loads: each npm module of the create package alone, 5 processes each
    log("timing each npm module's require alone");
    const createFn = serialized.find((f) => f.name === "create-session") ?? serialized[0];
    const moduleLoads: { module: string; medianMs: number }[] = [];
    for (const specifier of (createFn?.requires ?? []).filter((s) => packageOf(s) !== undefined)) {
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        times.push((await probe<{ loadMs: number }>(["require", specifier], handlerEnv)).loadMs);
      }
      moduleLoads.push({ module: packageOf(specifier)!, medianMs: round(median(times), 1) });
    }
    moduleLoads.sort((a, b) => b.medianMs - a.medianMs);

    // ---- heap after 10,000 requests (the serialized handler, --expose-gc)
    const heap: HeapResult[] = [];
    const heapEvents: Record<string, () => unknown[]> = {
      "create-session": () => [coldEvents["create-session"]()],
      "get-session": () =>
        listIds.slice(0, 20).map((id) =>
          apiEvent({
            method: "GET",
            path: `/v1/sessions/${id}`,
            routePath: "/v1/sessions/{id}",
            headers: { "x-bb-api-key": apiKeys.list },
            pathParameters: { id },
          }),
        ),
    };
    for (const [name, makeEvents] of Object.entries(heapEvents)) {
      const fn = serialized.find((f) => f.name === name);
      if (!fn) continue;
      log(`heap: ${name} x ${SETTINGS.heapRequests}`);
      const result = await probe<Omit<HeapResult, "function" | "growthBytes">>(
        ["heap", join(ROOT, fn.file), String(SETTINGS.heapRequests)],
        { ...handlerEnv, BENCH_EVENTS: JSON.stringify(makeEvents()) },
        ["--expose-gc"],
      );
      heap.push({
        function: name,
        warmupRequests: result.warmupRequests,
        requests: result.requests,
        heapAfterWarmup: result.heapAfterWarmup,
        heapCheckpoints: result.heapCheckpoints,
        growthBytes: result.heapCheckpoints[result.heapCheckpoints.length - 1] - result.heapAfterWarmup,
        statuses: result.statuses,
      });
    }

    // ---- CPU cost of the pieces of a request, in this process
    log("costing the pieces of a request");
    const pieces = await measurePieces();

    // ---- package sizes
    log("measuring package sizes");
    const excluded = (name: string) =>
      name.startsWith("@pulumi/") || manifest.excludedPackages.includes(name);
    const uploadDirs = new Map(manifest.uploadPaths.map((p) => [p, join(ROOT, p)]));
    const packages: { function: string; upload: SizeReport; requiredOnly: SizeReport }[] = [];
    for (const fn of serialized) {
      const code = readFileSync(join(ROOT, fn.file));
      const required = requiredPackageDirs(
        [...new Set(fn.requires.map(packageOf).filter((p): p is string => p !== undefined))],
        ROOT,
        excluded,
      );
      packages.push({
        function: fn.name,
        upload: measurePackage(fn.codeBytes, code, uploadDirs),
        requiredOnly: measurePackage(fn.codeBytes, code, required),
      });
    }

    // ---------------------------------------------------------------- verdicts
    const createP99 = at("create", c).p99;
    const rtOf = (route: string) => {
      const r = roundTrips.find((x) => x.route === route);
      // Without pipelining each command is one round trip; Redis's socket-read count confirms it.
      return r ? Math.max(r.clientCommandsPerRequest, r.readsPerRequest) : NaN;
    };
    const worstCold = coldStarts.length
      ? coldStarts.reduce((a, b) => (b.medianMs > a.medianMs ? b : a))
      : undefined;
    const biggest = packages.length
      ? packages.reduce((a, b) => (b.upload.totalBytes > a.upload.totalBytes ? b : a))
      : undefined;
    const worstHeap = heap.length
      ? heap.reduce((a, b) => (b.growthBytes > a.growthBytes ? b : a))
      : undefined;
    const notMeasured = serializationErrors.length
      ? `not measured: ${serializationErrors.map((e) => e.function).join(", ")} cannot be serialized`
      : "not measured";
    const checks: TargetCheck[] = [
      {
        name: `create vs floor A (c=${c})`,
        target: `>= ${TARGETS.createVsFloorA}x`,
        measured: `${round(createRatioA, 2)}x`,
        met: createRatioA >= TARGETS.createVsFloorA,
      },
      {
        name: `create vs floor B (c=${c})`,
        target: `>= ${TARGETS.createVsFloorB}x`,
        measured: `${round(createRatioB, 2)}x`,
        met: createRatioB >= TARGETS.createVsFloorB,
      },
      {
        name: `create p99 (c=${c})`,
        target: `< ${TARGETS.createP99Ms} ms`,
        measured: `${ms(createP99)} (${ms(openLoop.p99)} at ${openRate} req/s offered)`,
        met: createP99 < TARGETS.createP99Ms,
      },
      {
        name: `retrieve vs floor A (c=${c})`,
        target: `>= ${TARGETS.retrieveVsFloorA}x`,
        measured: `${round(retrieveRatioA, 2)}x`,
        met: retrieveRatioA >= TARGETS.retrieveVsFloorA,
      },
      ...["create", "retrieve", "release"].map((route) => ({
        name: `Redis round trips: ${route}`,
        target: `${TARGETS.roundTrips}`,
        measured: String(rtOf(route)),
        met: rtOf(route) === TARGETS.roundTrips,
      })),
      ...serializationErrors.map((e) => ({
        name: `function serializes: ${e.function}`,
        target: "serializeFunction succeeds",
        measured: e.error.split("\n")[0].slice(0, 120),
        met: false,
      })),
      {
        name: `cold start median (worst: ${worstCold?.function ?? "-"})`,
        target: `< ${TARGETS.coldStartMs} ms`,
        measured: worstCold ? ms(worstCold.medianMs) : notMeasured,
        met: !!worstCold && worstCold.medianMs < TARGETS.coldStartMs,
      },
      {
        name: `package size unzipped (largest: ${biggest?.function ?? "-"})`,
        target: `< ${bytes(TARGETS.packageBytes)}`,
        measured: biggest ? bytes(biggest.upload.totalBytes) : notMeasured,
        met: !!biggest && biggest.upload.totalBytes < TARGETS.packageBytes,
      },
      {
        name: "Redis memory per session (record + index entries, large project)",
        target: `< ${bytes(TARGETS.sessionBytes)}`,
        measured: `${memory.perSessionLargeProject} B`,
        met: memory.perSessionLargeProject < TARGETS.sessionBytes,
      },
      {
        name: `heap growth over ${SETTINGS.heapRequests} requests (worst: ${worstHeap?.function ?? "-"})`,
        target: `< ${bytes(TARGETS.heapGrowthBytes)}`,
        measured: worstHeap
          ? `${worstHeap.growthBytes < 0 ? "-" : "+"}${bytes(Math.abs(worstHeap.growthBytes))}`
          : notMeasured,
        met: !!worstHeap && worstHeap.growthBytes < TARGETS.heapGrowthBytes,
      },
    ];

    // ---------------------------------------------------------------- output
    const cpu = cpus();
    const machine = {
      cpuModel: cpu[0]?.model.trim() ?? "unknown",
      cores: cpu.length,
      memoryGiB: round(totalmem() / 1024 ** 3, 1),
      node: process.version,
      os: `${platform()} ${release()} ${arch()}`,
      redis: redisVersion,
      loadAverageBefore: loadAtStart.join(" "),
      loadAverageAfter: loadavg()
        .map((x) => round(x, 2))
        .join(" "),
    };
    let commit = "unknown";
    try {
      commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT }).toString().trim();
    } catch {
      // not a git checkout
    }
    const elapsedS = round((performance.now() - started) / 1000, 0);
    const output = renderReport({
      machine,
      commit,
      results,
      roundTrips,
      coldStarts,
      moduleLoads,
      packages,
      memory,
      heap,
      checks,
      profiles,
      pieces,
      c,
      releasesReused,
      serializationErrors,
      elapsedS,
    });
    process.stdout.write(output.text + "\n");
    const resultsJson = {
      generatedAt: new Date().toISOString(),
      commit,
      machine,
      settings: SETTINGS,
      targets: TARGETS,
      checks,
      throughput: results,
      ratios: {
        connections: c,
        createVsFloorA: round(createRatioA, 3),
        createVsFloorB: round(createRatioB, 3),
        retrieveVsFloorA: round(retrieveRatioA, 3),
      },
      roundTrips,
      coldStart: coldStarts,
      moduleLoads,
      packageSize: packages.map((p) => ({
        function: p.function,
        uploadBytes: p.upload.totalBytes,
        uploadZipBytes: p.upload.zipBytes,
        codeBytes: p.upload.codeBytes,
        requiredOnlyBytes: p.requiredOnly.totalBytes,
        packages: p.upload.packages.map((x) => ({ name: x.name, bytes: x.bytes, zipBytes: x.zipBytes })),
      })),
      memory,
      heap,
      profiles,
      pieces,
      releasesReused,
      serializationErrors,
      elapsedS,
    };
    writeFileSync(join(BENCH, "results.json"), JSON.stringify(resultsJson, null, 2) + "\n");
    mkdirSync(join(ROOT, "docs"), { recursive: true });
    writeFileSync(join(ROOT, "docs", "benchmarks.md"), output.markdown);
    log(`done in ${elapsedS} s: bench/results.json and docs/benchmarks.md written`);
  } finally {
    await cleanup();
  }
}

// ---------------------------------------------------------------- rendering

interface ReportInput {
  machine: Record<string, string | number>;
  commit: string;
  results: Aggregate[];
  roundTrips: {
    route: string;
    clientCommandsPerRequest: number;
    readsPerRequest: number;
    scriptedCommandsPerRequest: number;
    commands: Record<string, number>;
  }[];
  coldStarts: ColdStart[];
  moduleLoads: { module: string; medianMs: number }[];
  packages: { function: string; upload: SizeReport; requiredOnly: SizeReport }[];
  memory: {
    recordBytes: number;
    recordEncoding: string;
    recordFields: number;
    releasedRecordBytes?: number;
    indexSmallProject: { bytesPerSession: number; entries: number; encodings: string };
    indexLargeProject: { bytesPerSession: number; entries: number; encodings: string };
    perSessionSmallProject: number;
    perSessionLargeProject: number;
    usedMemoryPerSeededSession: number;
  };
  heap: HeapResult[];
  checks: TargetCheck[];
  profiles: Record<string, ProfileSummary>;
  pieces: PieceCost[];
  c: number;
  releasesReused: number;
  serializationErrors: { function: string; error: string }[];
  elapsedS: number;
}

function renderReport(input: ReportInput): { text: string; markdown: string } {
  const { results, c } = input;
  const row = (key: string) => results.find((r) => r.target === key && r.connections === c)!;
  const throughputHeaders = [
    "target",
    "conns",
    "req/s",
    "p50",
    "p99",
    "vs floor A",
    "vs floor B",
    "CPU/req server",
    "CPU/req redis",
    "non-2xx/errors",
  ];
  const throughputRows: Cell[][] = results.map((r) => [
    r.label,
    r.connections,
    r.rps,
    ms(r.p50),
    ms(r.p99),
    r.vsFloorA === undefined ? "-" : `${r.vsFloorA.toFixed(2)}x`,
    r.vsFloorB === undefined ? "-" : `${r.vsFloorB.toFixed(2)}x`,
    r.serverCpuUsPerReq === undefined ? "-" : `${r.serverCpuUsPerReq} us`,
    r.redisCpuUsPerReq === undefined ? "-" : `${r.redisCpuUsPerReq} us`,
    `${r.non2xx}/${r.errors}`,
  ]);
  const rtHeaders = [
    "route",
    "round trips/request",
    "commands sent/request",
    "commands sent",
    "commands inside scripts/request",
  ];
  const rtRows: Cell[][] = input.roundTrips.map((r) => [
    r.route,
    r.readsPerRequest,
    r.clientCommandsPerRequest,
    Object.entries(r.commands)
      .map(([name, n]) => `${name} x${n}`)
      .join(", "),
    r.scriptedCommandsPerRequest,
  ]);
  const coldHeaders = [
    "function",
    "median",
    "p90",
    "load",
    "first call",
    "process start to answer",
    "package (unzipped)",
    "zip",
    "required modules only",
  ];
  const coldRows: Cell[][] = input.coldStarts.map((cs) => {
    const pkg = input.packages.find((p) => p.function === cs.function);
    return [
      cs.function,
      ms(cs.medianMs),
      ms(cs.p90Ms),
      ms(cs.medianLoadMs),
      ms(cs.medianFirstCallMs),
      ms(cs.medianSinceProcessStartMs),
      pkg ? bytes(pkg.upload.totalBytes) : "-",
      pkg ? bytes(pkg.upload.zipBytes) : "-",
      pkg ? bytes(pkg.requiredOnly.totalBytes) : "-",
    ];
  });
  const upload = input.packages[0]?.upload;
  const pkgHeaders = ["package", "unzipped", "zip", "files", "share"];
  const pkgRows: Cell[][] = upload
    ? [
        [
          "(generated code, create-session)",
          bytes(upload.codeBytes),
          "-",
          1,
          `${round((100 * upload.codeBytes) / upload.totalBytes, 1)}%`,
        ],
        ...upload.packages.map((p) => [
          p.name,
          bytes(p.bytes),
          bytes(p.zipBytes),
          p.files,
          `${round((100 * p.bytes) / upload.totalBytes, 1)}%`,
        ]),
      ]
    : [];
  const moduleRows: Cell[][] = input.moduleLoads.map((m) => [m.module, ms(m.medianMs)]);
  const m = input.memory;
  const memHeaders = ["what", "bytes", "detail"];
  const memRows: Cell[][] = [
    [
      "session record (RUNNING, typical body)",
      m.recordBytes,
      `${m.recordFields} fields, ${m.recordEncoding}`,
    ],
    ["session record after release", m.releasedRecordBytes ?? "-", ""],
    [
      "index entries, small project",
      m.indexSmallProject.bytesPerSession,
      `${m.indexSmallProject.entries} sessions, ${m.indexSmallProject.encodings}`,
    ],
    [
      "index entries, large project",
      m.indexLargeProject.bytesPerSession,
      `${m.indexLargeProject.entries} sessions, ${m.indexLargeProject.encodings}`,
    ],
    ["per session, small project", m.perSessionSmallProject, "record + active + sessions entries"],
    ["per session, large project", m.perSessionLargeProject, "record + active + sessions entries"],
    [
      "used_memory delta per seeded session",
      m.usedMemoryPerSeededSession,
      "all-in: keyspace and expiry entries, allocator",
    ],
  ];
  const heapHeaders = [
    "function",
    "requests",
    "heap after warm-up",
    "heap after each 2,500",
    "growth",
    "statuses",
  ];
  const heapRows: Cell[][] = input.heap.map((h) => [
    h.function,
    h.requests,
    bytes(h.heapAfterWarmup),
    h.heapCheckpoints.map(bytes).join(" / "),
    `${h.growthBytes >= 0 ? "+" : "-"}${bytes(Math.abs(h.growthBytes))}`,
    Object.entries(h.statuses)
      .map(([s, n]) => `${s} x${n}`)
      .join(", "),
  ]);
  const checkHeaders = ["target", "wanted", "measured", "met"];
  const checkRows: Cell[][] = input.checks.map((ch) => [
    ch.name,
    ch.target,
    ch.measured,
    ch.met ? "yes" : "NO",
  ]);
  const profileBlocks = Object.entries(input.profiles).map(([key, p]) => ({
    key,
    summary: p,
    headers: ["self %", "self ms", "frame", "package"],
    rows: p.top.map((f) => [`${f.selfPct}%`, f.selfMs, f.frame, f.group]) as Cell[][],
    groups: p.groups
      .slice(0, 10)
      .map((g) => `${g.group} ${g.selfPct}%`)
      .join(", "),
  }));
  const machineLine =
    `${input.machine.cpuModel}, ${input.machine.cores} cores, ${input.machine.memoryGiB} GiB, ` +
    `Node ${input.machine.node}, Redis ${input.machine.redis}, ${input.machine.os}; ` +
    `load average ${input.machine.loadAverageBefore} before the run, ${input.machine.loadAverageAfter} after`;
  const note =
    `Each throughput row: ${SETTINGS.rounds} interleaved runs of ${SETTINGS.durationS} s (req/s is their median; p50/p99 over all ` +
    `2xx responses). Load generator, servers and Redis share the machine's ${input.machine.cores} cores. CPU/req: CPU time ` +
    `of the server process and of redis-server per answered request. "vs floor": median over rounds of the ` +
    `run's req/s over the same round's floor run. The "offered" row sends creates at evenly spaced times at half the ` +
    `closed-loop rate (open loop, latency from when each was due, up to 32 sockets): at a fixed ${SETTINGS.connections[SETTINGS.connections.length - 1]} busy connections latency is ` +
    `connections / throughput (Little's law), so p99 under 10 ms there needs over 3,200 req/s.`;
  const failed = input.checks.filter((ch) => !ch.met);
  const limits = explainMisses(input, failed);
  const pieceRows: Cell[][] = input.pieces.map((p) => [p.piece, `${p.cpuUs} us`]);

  const text = [
    "",
    `WallCrawler API benchmarks (commit ${input.commit}): ${machineLine}`,
    note,
    "",
    textTable(throughputHeaders, throughputRows),
    "",
    `Ratios at ${c} connections: create/floor A ${row("create").vsFloorA}x, ` +
      `create/floor B ${row("create").vsFloorB}x, retrieve/floor A ${row("retrieve").vsFloorA}x` +
      (input.releasesReused > 0
        ? ` (release runs re-released ${input.releasesReused} sessions: pool ran out)`
        : ""),
    "",
    "Redis round trips per request (MONITOR):",
    textTable(rtHeaders, rtRows),
    "",
    `Cold start (median of fresh processes; load = require of the serialized package, first call = its first answer):`,
    textTable(coldHeaders, coldRows),
    "",
    "Package contents (every function uploads the same node_modules):",
    textTable(pkgHeaders, pkgRows),
    "",
    "require() of each npm module alone, fresh process (median of 5):",
    textTable(["module", "require"], moduleRows),
    "",
    "Redis memory (MEMORY USAGE, SAMPLES 0):",
    textTable(memHeaders, memRows),
    "",
    "Handler heap (serialized package, --expose-gc, gc before each reading):",
    textTable(heapHeaders, heapRows),
    "",
    ...profileBlocks.flatMap((b) => [
      `CPU profile of the stack under ${b.key} at ${c} connections (${b.summary.busyMs} ms busy of ${b.summary.windowMs} ms sampled${b.summary.windowed ? "" : ", whole profile"}):`,
      textTable(b.headers, b.rows),
      `by package: ${b.groups}`,
      "",
    ]),
    ...input.serializationErrors.map((e) => `Cannot serialize ${e.function}:\n${e.error}\n`),
    "CPU per piece of a request (in-process, sequential):",
    textTable(["piece", "CPU"], pieceRows),
    "",
    "Targets:",
    textTable(checkHeaders, checkRows),
    "",
    failed.length ? `What limits the missed targets:\n${limits.join("\n")}` : "All targets met.",
    `(${input.elapsedS} s)`,
  ].join("\n");

  const markdown = [
    "# Benchmarks",
    "",
    "Generated by `npm run bench` (bench/run.ts); the raw figures are in `bench/results.json`.",
    "",
    `**Machine:** ${machineLine}. Commit \`${input.commit}\`.`,
    "",
    "## Throughput and latency",
    "",
    "The local stack (the Lambda handlers behind a node:http adapter, one process) against two",
    "floors, each a bare node:http server in its own process that returns a fixed JSON body:",
    "floor A does one `HSET` of a session-sized record per request, floor B runs the create",
    "path's own Lua script with the same keys and arguments. All on loopback, driven by autocannon.",
    note,
    "",
    markdownTable(throughputHeaders, throughputRows),
    "",
    "## Redis round trips",
    "",
    markdownTable(rtHeaders, rtRows),
    "",
    "## Cold start and package size",
    "",
    `Median of ${SETTINGS.coldRuns} fresh \`node\` processes per function, each requiring the package that`,
    "`pulumi.runtime.serializeFunction(factory, {isFactoryFunction: true})` generates (what",
    "`CallbackFunction` uploads) and answering one request with Redis and local secrets. The package",
    "size counts the generated code plus the node_modules `computeCodePaths` would upload",
    "(`@pulumi/*` and `@aws-sdk/client-secrets-manager`, which the Lambda runtime ships, left out).",
    "",
    markdownTable(coldHeaders, coldRows),
    "",
    markdownTable(pkgHeaders, pkgRows),
    "",
    "`require()` of each npm module alone in a fresh process:",
    "",
    markdownTable(["module", "require"], moduleRows),
    "",
    "## Memory",
    "",
    markdownTable(memHeaders, memRows),
    "",
    markdownTable(heapHeaders, heapRows),
    "",
    ...profileBlocks.flatMap((b) => [
      `## CPU profile: ${b.key} at ${c} connections`,
      "",
      `\`node --cpu-prof\` of the stack process, ${b.summary.busyMs} ms busy in the measured window. By package: ${b.groups}.`,
      "",
      markdownTable(b.headers, b.rows),
      "",
    ]),
    ...input.serializationErrors.flatMap((e) => [
      `## ${e.function} cannot be serialized`,
      "",
      "```",
      e.error,
      "```",
      "",
    ]),
    "## CPU per piece of a request",
    "",
    "Measured in-process with the library's own functions, sequentially.",
    "",
    markdownTable(["piece", "CPU"], pieceRows),
    "",
    "## Targets",
    "",
    markdownTable(checkHeaders, checkRows),
    "",
    ...(failed.length ? ["## What limits the missed targets", "", ...limits, ""] : []),
  ].join("\n");
  return { text, markdown };
}

/** One bullet per missed target: the measured cause and what would move it. */
function explainMisses(input: ReportInput, failed: TargetCheck[]): string[] {
  const { c } = input;
  const row = (key: string) => input.results.find((r) => r.target === key && r.connections === c)!;
  const piece = (prefix: string) => input.pieces.find((p) => p.piece.startsWith(prefix))?.cpuUs ?? NaN;
  const mint = piece("mint");
  const groups = (key: string) =>
    (input.profiles[key]?.groups ?? [])
      .slice(0, 6)
      .map((g) => `${g.group} ${g.selfPct}%`)
      .join(", ");
  const lines: string[] = [];
  const create = row("create");
  const floorA = row("floorA");
  const floorB = row("floorB");
  const retrieve = row("retrieve");
  const open = input.results.find((r) => r.target === "createOpenLoop");
  if (failed.some((f) => f.name.startsWith("create vs"))) {
    lines.push(
      `- create vs the floors: the stack spends ${create.serverCpuUsPerReq} us of CPU per create against ` +
        `${floorA.serverCpuUsPerReq} us (floor A) and ${floorB.serverCpuUsPerReq} us (floor B), while Redis ` +
        `spends ${create.redisCpuUsPerReq} us vs ${floorB.redisCpuUsPerReq} us for the same script: the limit is ` +
        `the Node side, on a machine whose ${String(input.machine.cores)} cores also run Redis and the load ` +
        `generator. Profile by package: ${groups("create")}. Minting the token alone costs ${mint} us ` +
        `(${round((100 * mint) / (create.serverCpuUsPerReq ?? NaN), 0)}% of create's CPU). What would move ` +
        `it: the token is already minted with node:crypto (jose's WebCrypto path cost about 300 us); what ` +
        `remains is spread thin: response and socket writes, the local HTTP adapter that builds each ` +
        `payload-2.0 event (absent in Lambda), JSON body parsing and validation, the per-create log line ` +
        `and ioredis's command objects. Moving it further means fewer layers per request (e.g. a leaner ` +
        `adapter, no log line per create) rather than one hot spot.`,
    );
  }
  if (failed.some((f) => f.name.startsWith("create p99"))) {
    lines.push(
      `- create p99: with ${c} connections always busy, latency is ${c} / throughput ` +
        `(${round((1000 * c) / create.rps, 1)} ms at ${create.rps} req/s); p99 under 10 ms at ${c} ` +
        `connections needs over ${(c * 100).toLocaleString("en-US")} req/s (floor A, one HSET and nothing ` +
        `else, reaches ${floorA.rps} req/s with p99 ${round(floorA.p99, 1)} ms). ` +
        (open
          ? `At ${open.label.replace("create, ", "")} (open loop) p50 is ${round(open.p50, 1)} ms and p99 ` +
            `${round(open.p99, 1)} ms. `
          : "") +
        `What would move it: the throughput above, and fewer cores shared with the load generator.`,
    );
  }
  if (failed.some((f) => f.name.startsWith("retrieve vs"))) {
    lines.push(
      `- retrieve vs floor A: ${retrieve.serverCpuUsPerReq} us of stack CPU per retrieve vs ` +
        `${floorA.serverCpuUsPerReq} us for floor A. A running session's retrieve mints a fresh connectUrl ` +
        `token (${mint} us, ${round((100 * mint) / (retrieve.serverCpuUsPerReq ?? NaN), 0)}% of it)` +
        (input.profiles.retrieve ? `; profile by package: ${groups("retrieve")}` : "") +
        `. What would move it: reusing a connect token minted for the same session while it has most ` +
        `of its life left, and the thinner request path described for create.`,
    );
  }
  if (failed.some((f) => f.name.startsWith("cold start"))) {
    const worst = input.coldStarts.reduce((a, b) => (b.medianMs > a.medianMs ? b : a));
    const fallback = input.coldStarts.find((cs) => cs.function === "fallback");
    lines.push(
      `- cold start: ${worst.function} takes ${worst.medianMs} ms, of which ${worst.medianLoadMs} ms is ` +
        `loading the package (the first answer: ${worst.medianFirstCallMs} ms). Each npm module alone: ` +
        input.moduleLoads.map((m) => `${m.module} ${m.medianMs} ms`).join(", ") +
        (fallback ? `; the fallback, which loads only the logger, starts in ${fallback.medianMs} ms` : "") +
        `. What would move it: load less at init: a bundled, tree-shaken handler instead of whole ` +
        `modules, and requiring the Secrets Manager client only where a secret is not a local file.`,
    );
  }
  if (failed.some((f) => f.name.startsWith("package size"))) {
    const pkg = input.packages[0]?.upload;
    const top = pkg?.packages[0];
    if (pkg && top) {
      lines.push(
        `- package size: ${top.name} is ${bytes(top.bytes)} of ${bytes(pkg.totalBytes)} ` +
          `(${round((100 * top.bytes) / pkg.totalBytes, 0)}%); the archive carries every file of every ` +
          `runtime dependency. What would move it: bundling each handler (esbuild, tree-shaken) into ` +
          `one file instead of shipping node_modules, or a smaller validator than ${top.name} on the ` +
          `request path.`,
      );
    }
  }
  for (const f of failed) {
    if (!lines.some((line) => line.startsWith(`- ${f.name.split(" ")[0]}`))) {
      lines.push(`- ${f.name}: ${f.measured} (wanted ${f.target})`);
    }
  }
  return lines;
}

main().then(
  () => process.exit(0),
  (error: Error) => {
    console.error(`bench failed: ${error.stack ?? error.message}`);
    process.exit(1);
  },
);
