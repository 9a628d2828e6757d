/**
 * Cold start of create-session with and without the shared-dependencies layer, against a floor,
 * and what each way of reading a secret costs a fresh process. Interleaved: one fresh `node` per
 * variant per round, so drift on a busy machine hits every variant alike.
 *
 *   today:  the serialized `__index.js` beside the repository's node_modules (what the package held)
 *   layer:  the same code, npm packages only from the layer (NODE_PATH, as Lambda's /opt/nodejs)
 *   floor:  no npm module: a raw socket to Redis, one HSET, an answer
 *
 * Secrets (load + one GetSecretValue against a loopback stand-in): the SDK client, a SigV4 module
 * of node:crypto + node:https (bench/layer-sigv4-secrets.ts), and the Parameters and Secrets
 * Lambda extension's HTTP API (one GET to localhost, by fetch and by node:http).
 *
 * Usage: node -r ts-node/register/transpile-only bench/layer-coldstart.ts [rounds=15] [--json]
 * Meant to be called from the bench's cold-start phase too: `measureLayerColdStart(rounds)`.
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import * as pulumi from "@pulumi/pulumi";
import { ROUTES } from "../handlers/routes";
import { routeHandlerFactory } from "../infra/functions";
import { buildDependencyLayer } from "../infra/layer";
import { generateApiKey } from "../lib/apikeys";
import { rotateTokenKeySet } from "../lib/tokens";
import { apiEvent } from "../local/events";
import { startRedisServer } from "../local/redis-server";

const run = promisify(execFile);
const ROOT = resolve(__dirname, "..");

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
  coldStart: VariantSummary[];
  secrets: VariantSummary[];
  layerBytes: number;
  packageBytes: number;
}

/** The probe: require the code, answer one event, print the times. Plain JS, run by plain node. */
const HANDLER_PROBE = `
const t0 = performance.now();
const { handler } = require(process.argv[2]);
const t1 = performance.now();
const event = require(process.argv[3]);
handler(event, { awsRequestId: "cold-start" }).then((r) => {
  const t2 = performance.now();
  process.stdout.write(JSON.stringify({ loadMs: t1 - t0, firstCallMs: t2 - t1, totalMs: t2 - t0, sinceStartMs: t2, status: r.statusCode }) + "\\n");
  process.exit(0);
}, (e) => { console.error(e); process.exit(1); });
`;

/** The floor: no npm module, a raw RESP HSET over node:net, then an answer. */
const FLOOR_PROBE = `
const t0 = performance.now();
const net = require("net");
const crypto = require("crypto");
const url = new URL(process.env.REDIS_ENDPOINT);
function resp(args) { return "*" + args.length + "\\r\\n" + args.map((a) => { a = String(a); return "$" + Buffer.byteLength(a) + "\\r\\n" + a + "\\r\\n"; }).join(""); }
const handler = (event) => new Promise((resolve, reject) => {
  const id = crypto.randomUUID();
  const now = new Date().toISOString();
  const socket = net.connect(Number(url.port), url.hostname, () => {
    socket.write(resp(["HSET", "wc:{floor}:session:" + id, "id", id, "projectId", "floor", "status", "RUNNING", "createdAt", now, "body", event.body || ""]));
  });
  socket.once("data", (data) => {
    socket.destroy();
    if (data[0] !== 58) return reject(new Error("HSET: " + data));
    resolve({ statusCode: 201, body: JSON.stringify({ id, projectId: "floor", status: "RUNNING", createdAt: now }) });
  });
  socket.once("error", reject);
});
const t1 = performance.now();
const event = require(process.argv[3]);
handler(event).then((r) => {
  const t2 = performance.now();
  process.stdout.write(JSON.stringify({ loadMs: t1 - t0, firstCallMs: t2 - t1, totalMs: t2 - t0, sinceStartMs: t2, status: r.statusCode }) + "\\n");
  process.exit(0);
}, (e) => { console.error(e); process.exit(1); });
`;

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
  const m = require(process.argv[3]);
  get = () => m.getSecretValue(secretId);
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

async function probe(
  script: string,
  args: string[],
  env: Record<string, string>,
  cwd: string,
): Promise<ProbeTimes> {
  const { stdout } = await run(process.execPath, [script, ...args], {
    cwd,
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

/** Runs every variant `rounds` times, interleaved; returns medians. */
export async function measureLayerColdStart(rounds = 15): Promise<LayerColdStartReport> {
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
    const layer = await buildDependencyLayer({ projectDir: ROOT });
    const layerModules = join(layer.dir, "nodejs", "node_modules");
    // The runtime's own SDK clients (Lambda's /var/runtime/node_modules).
    const runtimeModules = join(work, "runtime", "node_modules");
    for (const sdk of [
      "@aws-sdk/client-secrets-manager",
      "@aws-sdk/client-s3",
      "@aws-sdk/s3-request-presigner",
    ]) {
      mkdirSync(dirname(join(runtimeModules, sdk)), { recursive: true });
      symlinkSync(join(ROOT, "node_modules", sdk), join(runtimeModules, sdk), "dir");
    }
    for (const dir of [work, beside]) {
      writeFileSync(join(dir, "__index.js"), serialized.text);
      writeFileSync(join(dir, "probe.js"), HANDLER_PROBE);
    }
    writeFileSync(join(work, "floor.js"), FLOOR_PROBE);
    writeFileSync(join(beside, "secrets.js"), SECRETS_PROBE);
    // The SigV4 module as the layer would ship it: one bundled file.
    const esbuild = await import("esbuild");
    const sigv4 = join(work, "sigv4.js");
    esbuild.buildSync({
      entryPoints: [join(ROOT, "bench", "layer-sigv4-secrets.ts")],
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
    const eventFile = join(work, "event.json");
    writeFileSync(
      eventFile,
      JSON.stringify(
        apiEvent({
          method: "POST",
          path: "/v1/sessions",
          headers: { "x-bb-api-key": key },
          body: { timeout: 60, userMetadata: { bench: "cold-start" } },
        }),
      ),
    );
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

    const coldStart: Record<string, ProbeTimes[]> = { today: [], layer: [], floor: [] };
    const secrets: Record<string, ProbeTimes[]> = {
      none: [],
      sdk: [],
      sigv4: [],
      "extension-fetch": [],
      "extension-http": [],
    };
    const nodePath = [layerModules, runtimeModules].join(":");
    for (let round = 0; round < rounds; round++) {
      coldStart.today.push(
        await probe(join(beside, "probe.js"), [join(beside, "__index.js"), eventFile], env, beside),
      );
      coldStart.layer.push(
        await probe(
          join(work, "probe.js"),
          [join(work, "__index.js"), eventFile],
          { ...env, NODE_PATH: nodePath },
          work,
        ),
      );
      coldStart.floor.push(await probe(join(work, "floor.js"), ["-", eventFile], env, work));
      for (const kind of Object.keys(secrets)) {
        secrets[kind].push(await probe(join(beside, "secrets.js"), [kind, sigv4], env, beside));
      }
    }
    for (const [name, runs] of Object.entries(coldStart)) {
      if (runs.some((r) => r.status !== 201)) throw new Error(`${name}: a probe did not answer 201`);
    }
    return {
      rounds,
      coldStart: Object.entries(coldStart).map(([name, runs]) => summarize(name, runs)),
      secrets: Object.entries(secrets).map(([name, runs]) => summarize(name, runs)),
      layerBytes: layer.totalBytes,
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
  const today = report.coldStart.find((v) => v.name === "today")!.median.totalMs;
  const floor = report.coldStart.find((v) => v.name === "floor")!.median.totalMs;
  const lines = [
    `Cold start of create-session, median of ${report.rounds} fresh processes each, interleaved`,
    "",
    "| variant | load | first call | total | p90 total | process start to answer | vs today | vs floor |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...report.coldStart.map(
      (v) =>
        `| ${v.name} | ${ms(v.median.loadMs)} | ${ms(v.median.firstCallMs)} | ${ms(v.median.totalMs)} | ${ms(v.p90TotalMs)} | ${ms(v.median.sinceStartMs)} | ${(v.median.totalMs / today).toFixed(2)}x | ${(v.median.totalMs / floor).toFixed(2)}x |`,
    ),
    "",
    `layer: ${(report.layerBytes / 1024).toFixed(1)} KiB unzipped; create-session package: ${(report.packageBytes / 1024).toFixed(1)} KiB (its __index.js)`,
    "",
    "Reading one secret in a fresh process (load, then one GetSecretValue at a loopback stand-in)",
    "",
    "| way | load | first value | total |",
    "| --- | --- | --- | --- |",
    ...report.secrets.map(
      (v) => `| ${v.name} | ${ms(v.median.loadMs)} | ${ms(v.median.firstCallMs)} | ${ms(v.median.totalMs)} |`,
    ),
  ];
  return lines.join("\n");
}

if (require.main === module) {
  const rounds = Number(process.argv.find((arg) => /^\d+$/.test(arg)) ?? 15);
  measureLayerColdStart(rounds).then(
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
