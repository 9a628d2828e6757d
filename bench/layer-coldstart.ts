/**
 * Cold start side by side: the package as it was before the shared-dependencies layer
 * (`BASELINE_COMMIT`), today's code with the layer, and a floor; and what each way of reading a
 * secret costs a fresh process. Interleaved: one fresh `node` per variant per round, so drift on a
 * busy machine hits every variant alike.
 *
 *   today's package (baseline): the serialized `__index.js` of `BASELINE_COMMIT`, built from a
 *           temporary worktree of that commit, beside the repository's node_modules (what its
 *           package held)
 *   layer:  the current code, npm packages only from the layer and the runtime's SDK clients
 *           (NODE_PATH, as Lambda's /opt/nodejs/node_modules and /var/runtime/node_modules)
 *   floor:  no npm module: a raw socket to Redis, one HSET, an answer (bench/probe.js floor)
 *
 * The pieces (`buildBaselinePackages`, `prepareLayerRuntime`, `placeFunction`) serve the bench's
 * cold-start phase, which runs every function this way against the bench's own Redis;
 * `measureLayerColdStart` is the stand-alone study of create-session, with the secrets readers.
 *
 * Secrets (load + one GetSecretValue against a loopback stand-in): the SDK client, the functions'
 * own SigV4 client of node:crypto + node:https (lib/secrets-manager.ts, bundled), and the Parameters
 * and Secrets Lambda extension's HTTP API (one GET to localhost, by fetch and by node:http).
 *
 * Usage: node -r ts-node/register/transpile-only bench/layer-coldstart.ts [rounds=15] [--json]
 */
import { execFile } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import * as pulumi from "@pulumi/pulumi";
import { ROUTES } from "../handlers/routes";
import { EXCLUDED_PACKAGES, routeHandlerFactory } from "../infra/functions";
import { buildDependencyLayer, type BuiltLayer } from "../infra/layer";
import { generateApiKey } from "../lib/apikeys";
import { rotateTokenKeySet } from "../lib/tokens";
import { apiEvent } from "../local/events";
import { startRedisServer } from "../local/redis-server";
import { probe as probeProcess, TS_NODE } from "./processes";

const run = promisify(execFile);
const ROOT = resolve(__dirname, "..");

/**
 * "Today's package" of issue 15's cold-start target: the last commit before the dependency layer,
 * the SigV4 secrets client and the bundling work (its functions loaded zod, ioredis, jose and the
 * Secrets Manager client from node_modules). A fixed commit, so the target's denominator does not
 * move as the code improves.
 */
export const BASELINE_COMMIT = "d9beec6";

/** The AWS SDK packages the Node.js Lambda runtime provides (its /var/runtime/node_modules). */
const RUNTIME_SDK_PACKAGES = [
  "@aws-sdk/client-secrets-manager",
  ...EXCLUDED_PACKAGES.filter((name) => name.startsWith("@aws-sdk/") || name.startsWith("@smithy/")),
];

/** One fresh process's times (ms, from the process's own time origin). */
export interface ProbeTimes {
  /** Requiring the code (the factory runs: Lambda's init). */
  loadMs: number;
  /** The first answered request after load. */
  firstCallMs: number;
  /** load + first call: the cold start a client waits for, past the runtime's own start. */
  totalMs: number;
  /** Process start to answer (node's own boot included). */
  sinceStartMs: number;
  status: number;
}

export interface VariantSummary {
  name: string;
  runs: number;
  median: ProbeTimes;
  p90TotalMs: number;
}

export interface LayerColdStartReport {
  rounds: number;
  baselineCommit: string;
  /** Why the baseline is missing, when it is. */
  baselineNotMeasured?: string;
  coldStart: VariantSummary[];
  secrets: VariantSummary[];
  layerBytes: number;
  packageBytes: number;
}

/** The baseline's serialized functions (name -> `__index.js`), or why there are none. */
export type BaselineBuild =
  { commit: string; dir: string; files: Record<string, string> } | { commit: string; notMeasured: string };

/** The script run inside the baseline's worktree: that tree's own factories, serialized. */
const BASELINE_SERIALIZER = `
const { mkdirSync, writeFileSync } = require("node:fs");
const { join } = require("node:path");
const pulumi = require("@pulumi/pulumi");
const { ROUTES } = require("./handlers/routes");
const infra = require("./infra/functions");
const [outDir, ...names] = process.argv.slice(2);
(async () => {
  for (const name of names) {
    const route = ROUTES.find((r) => r.name === name);
    const factory = route
      ? infra.routeHandlerFactory(route)
      : name === infra.FALLBACK_NAME ? infra.fallbackHandlerFactory(ROUTES) : undefined;
    if (!factory) continue;
    const serialized = await pulumi.runtime.serializeFunction(factory, { isFactoryFunction: true });
    mkdirSync(join(outDir, name), { recursive: true });
    writeFileSync(join(outDir, name, "__index.js"), serialized.text);
  }
  process.exit(0);
})().catch((error) => { console.error(error); process.exit(1); });
`;

const firstLine = (error: unknown) =>
  (error instanceof Error ? error.message : String(error)).split("\n").find((l) => l.trim()) ?? "";

/**
 * Serializes `names` with `BASELINE_COMMIT`'s own code: a temporary `git worktree` of that commit
 * (outside the repository, removed afterwards) with the repository's node_modules linked in, its
 * factories serialized by its own modules. The files go to `outDir`, which should sit inside the
 * repository's node_modules tree so they load "beside node_modules", as that package did. Without
 * git history (a tarball) or that commit, says why instead of failing.
 */
export async function buildBaselinePackages(names: string[], outDir: string): Promise<BaselineBuild> {
  const commit = BASELINE_COMMIT;
  const git = (args: string[], cwd = ROOT) => run("git", args, { cwd, timeout: 120_000 });
  try {
    await git(["rev-parse", "--verify", "--quiet", `${commit}^{commit}`]);
  } catch (error) {
    return {
      commit,
      notMeasured: `commit ${commit} is not in this checkout's git history (${firstLine(error) || "no git"})`,
    };
  }
  const home = mkdtempSync(join(tmpdir(), "wc-baseline-"));
  const tree = join(home, "tree");
  try {
    await git(["worktree", "add", "--detach", tree, commit]);
    symlinkSync(join(ROOT, "node_modules"), join(tree, "node_modules"), "dir");
    writeFileSync(join(tree, "serialize-baseline.js"), BASELINE_SERIALIZER);
    mkdirSync(outDir, { recursive: true });
    await run(process.execPath, [...TS_NODE, "serialize-baseline.js", outDir, ...names], {
      cwd: tree,
      timeout: 600_000,
    });
    const files: Record<string, string> = {};
    for (const name of names) {
      const file = join(outDir, name, "__index.js");
      if (existsSync(file)) files[name] = file;
    }
    return { commit, dir: outDir, files };
  } catch (error) {
    return { commit, notMeasured: `cannot build ${commit}'s package: ${firstLine(error)}` };
  } finally {
    // The link first, so removing the worktree can never reach into the real node_modules.
    if (existsSync(join(tree, "node_modules"))) unlinkSync(join(tree, "node_modules"));
    await git(["worktree", "remove", "--force", tree]).catch(() => undefined);
    rmSync(home, { recursive: true, force: true });
    await git(["worktree", "prune"]).catch(() => undefined);
  }
}

/** What a function sees on Lambda with the layer attached: its NODE_PATH. */
export interface LayerRuntime {
  layer: BuiltLayer;
  /** The layer's node_modules, then the runtime's SDK clients. */
  nodePath: string;
  /** The layer's `nodejs/` directory (resolve a specifier from here to get the layer's file). */
  layerRoot: string;
}

/** Builds (or finds cached) the layer and a stand-in for the runtime's SDK clients under `work`. */
export async function prepareLayerRuntime(work: string): Promise<LayerRuntime> {
  const layer = await buildDependencyLayer({ projectDir: ROOT });
  const runtimeModules = join(work, "runtime", "node_modules");
  for (const sdk of RUNTIME_SDK_PACKAGES) {
    if (!existsSync(join(ROOT, "node_modules", sdk))) continue;
    mkdirSync(dirname(join(runtimeModules, sdk)), { recursive: true });
    symlinkSync(join(ROOT, "node_modules", sdk), join(runtimeModules, sdk), "dir");
  }
  const layerRoot = join(layer.dir, "nodejs");
  return { layer, layerRoot, nodePath: [join(layerRoot, "node_modules"), runtimeModules].join(":") };
}

/**
 * A function's package as Lambda unpacks it, outside the repository (so nothing resolves from its
 * node_modules): `<work>/task/<name>/__index.js`, beside `node_modules` holding only what the
 * upload carries (`uploadPaths`, relative to the repository root). Returns the file.
 */
export function placeFunction(work: string, name: string, code: string, uploadPaths: string[] = []): string {
  const task = join(work, "task");
  for (const path of uploadPaths) {
    const link = join(task, path);
    if (existsSync(link)) continue;
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(join(ROOT, path), link, "dir");
  }
  const file = join(task, name, "__index.js");
  mkdirSync(dirname(file), { recursive: true });
  copyFileSync(code, file);
  return file;
}

/** One GetSecretValue (or extension GET) in a fresh process: `kind` picks the way. */
const SECRETS_PROBE = `
const kind = process.argv[2];
const secretId = "arn:aws:secretsmanager:us-west-2:123456789012:secret:bench";
const t0 = performance.now();
let get;
if (kind === "sdk") {
  const { SecretsManagerClient, GetSecretValueCommand } = require("@aws-sdk/client-secrets-manager");
  const client = new SecretsManagerClient({ maxAttempts: 2 });
  get = () => client.send(new GetSecretValueCommand({ SecretId: secretId })).then((o) => o.SecretString);
} else if (kind === "sigv4") {
  const client = require(process.argv[3]).SecretsManagerClient.fromEnv();
  get = () => client.getSecretValue(secretId).then((o) => o.SecretString);
} else if (kind === "extension-fetch") {
  get = () => fetch(process.env.EXTENSION_URL + "/secretsmanager/get?secretId=" + encodeURIComponent(secretId), {
    headers: { "X-Aws-Parameters-Secrets-Token": process.env.AWS_SESSION_TOKEN },
  }).then((r) => r.json()).then((o) => o.SecretString);
} else if (kind === "extension-http") {
  const http = require("http");
  get = () => new Promise((resolve, reject) => {
    http.get(process.env.EXTENSION_URL + "/secretsmanager/get?secretId=" + encodeURIComponent(secretId),
      { headers: { "X-Aws-Parameters-Secrets-Token": process.env.AWS_SESSION_TOKEN } }, (res) => {
        const chunks = []; res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve(JSON.parse(Buffer.concat(chunks).toString()).SecretString));
      }).on("error", reject);
  });
} else if (kind === "none") {
  get = () => Promise.resolve('{"bench":true}');
}
const t1 = performance.now();
get().then((value) => {
  const t2 = performance.now();
  if (!value || !value.includes("bench")) { console.error("no value"); process.exit(1); }
  process.stdout.write(JSON.stringify({ loadMs: t1 - t0, firstCallMs: t2 - t1, totalMs: t2 - t0, sinceStartMs: t2, status: 200 }) + "\\n");
  process.exit(0);
}, (e) => { console.error(e); process.exit(1); });
`;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function summarize(name: string, runs: ProbeTimes[]): VariantSummary {
  const pick = (key: keyof ProbeTimes) => median(runs.map((r) => r[key]));
  const totals = [...runs.map((r) => r.totalMs)].sort((a, b) => a - b);
  return {
    name,
    runs: runs.length,
    median: {
      loadMs: pick("loadMs"),
      firstCallMs: pick("firstCallMs"),
      totalMs: pick("totalMs"),
      sinceStartMs: pick("sinceStartMs"),
      status: runs[0]?.status ?? 0,
    },
    p90TotalMs: totals[Math.min(totals.length - 1, Math.ceil(totals.length * 0.9) - 1)],
  };
}

/** What bench/probe.js reports for one cold start. */
interface ProbeReport {
  loadMs: number;
  firstCallMs: number;
  totalMs: number;
  sinceProcessStartMs: number;
  statusCode: number;
}

/** One fresh process of bench/probe.js (`cold <file>` or `floor`), answering `event`. */
async function probeCold(args: string[], event: unknown, env: Record<string, string>): Promise<ProbeTimes> {
  const r = await probeProcess<ProbeReport>(args, {
    PATH: process.env.PATH ?? "",
    ...env,
    BENCH_EVENTS: JSON.stringify([event]),
  });
  return {
    loadMs: r.loadMs,
    firstCallMs: r.firstCallMs,
    totalMs: r.totalMs,
    sinceStartMs: r.sinceProcessStartMs,
    status: r.statusCode,
  };
}

async function probeSecrets(
  script: string,
  args: string[],
  env: Record<string, string>,
): Promise<ProbeTimes> {
  const { stdout } = await run(process.execPath, [script, ...args], {
    cwd: dirname(script),
    env: { PATH: process.env.PATH ?? "", ...env },
    timeout: 60_000,
  });
  return JSON.parse(stdout.trim().split("\n").pop()!) as ProbeTimes;
}

/** A loopback stand-in for Secrets Manager (POST, JSON 1.1) and for the extension (GET). */
function secretsStandIn(): Promise<Server> {
  const value = JSON.stringify({ bench: true });
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/x-amz-json-1.1" });
      res.end(
        JSON.stringify({
          ARN: "arn:aws:secretsmanager:us-west-2:123456789012:secret:bench",
          Name: "bench",
          SecretString: value,
          VersionId: "v1",
          VersionStages: ["AWSCURRENT"],
          CreatedDate: 1767225600,
        }),
      );
    });
  });
  return new Promise((ok) => server.listen(0, "127.0.0.1", () => ok(server)));
}

/**
 * create-session's cold start: today's package (`BASELINE_COMMIT`), the current code with the
 * layer, and the floor, `rounds` times interleaved, then (with `secrets`) the ways of reading a
 * secret; returns medians.
 */
export async function measureLayerColdStart(rounds = 15, secrets = true): Promise<LayerColdStartReport> {
  const work = mkdtempSync(join(tmpdir(), "wc-layer-bench-"));
  mkdirSync(join(ROOT, "node_modules", ".cache"), { recursive: true });
  const beside = mkdtempSync(join(ROOT, "node_modules", ".cache", "wc-layer-bench-"));
  const redisDir = mkdtempSync(join(tmpdir(), "wc-layer-bench-redis-"));
  const redis = await startRedisServer({ dir: redisDir, args: [] });
  const standIn = await secretsStandIn();
  try {
    const route = ROUTES.find((r) => r.name === "create-session");
    if (!route) throw new Error("no create-session route");
    const serialized = await pulumi.runtime.serializeFunction(routeHandlerFactory(route), {
      isFactoryFunction: true,
    });
    writeFileSync(join(work, "current.js"), serialized.text);
    const current = placeFunction(work, "create-session", join(work, "current.js"));
    const runtime = await prepareLayerRuntime(work);
    const baseline = await buildBaselinePackages(["create-session"], join(beside, "baseline"));
    const baselineFile = "files" in baseline ? baseline.files["create-session"] : undefined;
    writeFileSync(join(beside, "secrets.js"), SECRETS_PROBE);
    // The functions' own signed client (lib/secrets-manager.ts), bundled into one file.
    const esbuild = await import("esbuild");
    const sigv4 = join(work, "sigv4.js");
    esbuild.buildSync({
      entryPoints: [join(ROOT, "lib", "secrets-manager.ts")],
      outfile: sigv4,
      bundle: true,
      minify: true,
      format: "cjs",
      platform: "node",
      target: "node22",
      logLevel: "silent",
    });

    const { key, entry } = generateApiKey("coldstart");
    const secretsFile = join(work, "secrets.json");
    writeFileSync(
      secretsFile,
      JSON.stringify({
        apiKeys: { keys: [entry], projects: [{ id: "coldstart", concurrency: 100_000 }] },
        tokenKeys: rotateTokenKeySet(undefined, "k1"),
      }),
    );
    const event = apiEvent({
      method: "POST",
      path: "/v1/sessions",
      headers: { "x-bb-api-key": key },
      body: { timeout: 60, userMetadata: { bench: "cold-start" } },
    });
    const standInUrl = `http://127.0.0.1:${(standIn.address() as AddressInfo).port}`;
    const env: Record<string, string> = {
      REDIS_ENDPOINT: redis.url,
      REDIS_CLUSTER: "false",
      JWE_SECRET_ARN: `file:${secretsFile}#tokenKeys`,
      API_KEYS_SECRET_ARN: `file:${secretsFile}#apiKeys`,
      ALB_DNS_NAME: "connect.bench.example",
      CONNECT_SCHEME: "wss",
      WALLCRAWLER_REGION: "us-west-2",
      POWERTOOLS_LOG_LEVEL: "SILENT",
      POWERTOOLS_METRICS_DISABLED: "true",
      AWS_REGION: "us-west-2",
      AWS_ACCESS_KEY_ID: "AKIDBENCH",
      AWS_SECRET_ACCESS_KEY: "bench-secret-key",
      AWS_SESSION_TOKEN: "bench-session-token",
      AWS_ENDPOINT_URL_SECRETS_MANAGER: standInUrl,
      EXTENSION_URL: standInUrl,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    };

    const coldStart: Record<string, ProbeTimes[]> = {
      ...(baselineFile ? { today: [] } : {}),
      layer: [],
      floor: [],
    };
    const secretRuns: Record<string, ProbeTimes[]> = secrets
      ? { none: [], sdk: [], sigv4: [], "extension-fetch": [], "extension-http": [] }
      : {};
    for (let round = 0; round < rounds; round++) {
      if (baselineFile) coldStart.today.push(await probeCold(["cold", baselineFile], event, env));
      coldStart.layer.push(
        await probeCold(["cold", current], event, { ...env, NODE_PATH: runtime.nodePath }),
      );
      coldStart.floor.push(await probeCold(["floor"], event, env));
      for (const kind of Object.keys(secretRuns)) {
        secretRuns[kind].push(await probeSecrets(join(beside, "secrets.js"), [kind, sigv4], env));
      }
    }
    for (const [name, runs] of Object.entries(coldStart)) {
      if (runs.some((r) => r.status !== 201)) throw new Error(`${name}: a probe did not answer 201`);
    }
    return {
      rounds,
      baselineCommit: baseline.commit,
      baselineNotMeasured: "notMeasured" in baseline ? baseline.notMeasured : undefined,
      coldStart: Object.entries(coldStart).map(([name, runs]) => summarize(name, runs)),
      secrets: Object.entries(secretRuns).map(([name, runs]) => summarize(name, runs)),
      layerBytes: runtime.layer.totalBytes,
      packageBytes: Buffer.byteLength(serialized.text),
    };
  } finally {
    standIn.close();
    await redis.stop();
    for (const dir of [work, beside, redisDir]) rmSync(dir, { recursive: true, force: true });
  }
}

function table(report: LayerColdStartReport): string {
  const ms = (value: number) => `${value.toFixed(1)} ms`;
  const today = report.coldStart.find((v) => v.name === "today")?.median.totalMs;
  const floor = report.coldStart.find((v) => v.name === "floor")!.median.totalMs;
  const lines = [
    `Cold start of create-session, median of ${report.rounds} fresh processes each, interleaved; ` +
      `today = the package at ${report.baselineCommit}` +
      (report.baselineNotMeasured ? ` (not measured: ${report.baselineNotMeasured})` : ""),
    "",
    "| variant | load | first call | total | p90 total | process start to answer | vs today | vs floor |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...report.coldStart.map(
      (v) =>
        `| ${v.name} | ${ms(v.median.loadMs)} | ${ms(v.median.firstCallMs)} | ${ms(v.median.totalMs)} | ${ms(v.p90TotalMs)} | ${ms(v.median.sinceStartMs)} | ${today ? `${(v.median.totalMs / today).toFixed(2)}x` : "-"} | ${(v.median.totalMs / floor).toFixed(2)}x |`,
    ),
    "",
    `layer: ${(report.layerBytes / 1024).toFixed(1)} KiB unzipped; create-session package: ${(report.packageBytes / 1024).toFixed(1)} KiB (its __index.js)`,
  ];
  if (report.secrets.length) {
    lines.push(
      "",
      "Reading one secret in a fresh process (load, then one GetSecretValue at a loopback stand-in)",
      "",
      "| way | load | first value | total |",
      "| --- | --- | --- | --- |",
      ...report.secrets.map(
        (v) =>
          `| ${v.name} | ${ms(v.median.loadMs)} | ${ms(v.median.firstCallMs)} | ${ms(v.median.totalMs)} |`,
      ),
    );
  }
  return lines.join("\n");
}

if (require.main === module) {
  const rounds = Number(process.argv.find((arg) => /^\d+$/.test(arg)) ?? 15);
  measureLayerColdStart(rounds, !process.argv.includes("--no-secrets")).then(
    (report) => {
      console.log(process.argv.includes("--json") ? JSON.stringify(report, null, 2) : table(report));
      process.exit(0);
    },
    (error: Error) => {
      console.error(`layer cold start failed: ${error.stack ?? error.message}`);
      process.exit(1);
    },
  );
}
