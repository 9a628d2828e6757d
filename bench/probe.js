// A fresh Node process that loads one serialized handler package the way the Lambda runtime
// does (require the file, call exports.handler) and reports over IPC. Plain JavaScript, so
// nothing but the package itself is loaded before the clock starts.
//   node probe.js cold <package.js>                 time to load the package and answer one request
//   node --expose-gc probe.js heap <package.js> N   heap after a warm-up and after N more requests
//   node probe.js require <module>                  time to require one npm module alone
//   node probe.js floor                             the cold-start floor: no npm module, one raw
//                                                   HSET to REDIS_ENDPOINT over node:net, an answer
// The event(s) come from BENCH_EVENTS (a JSON array of API Gateway payload-2.0 events).
"use strict";
const { performance } = require("node:perf_hooks");
const { Buffer } = require("node:buffer");
const { URL } = require("node:url");

function report(result) {
  if (process.send) process.send(result, () => process.exit(0));
  else {
    console.log(JSON.stringify(result));
    process.exit(0);
  }
}

function events() {
  const list = JSON.parse(process.env.BENCH_EVENTS || "[]");
  if (list.length === 0) throw new Error("BENCH_EVENTS is empty");
  return list;
}

async function cold(file) {
  const event = events()[0];
  const t0 = performance.now();
  const mod = require(file);
  const t1 = performance.now();
  const result = await mod.handler(event, { awsRequestId: "cold-start" });
  reportColdStart(t0, t1, result);
}

/** One cold start's times: load from t0 to t1, the first answer from t1 to now. */
function reportColdStart(t0, t1, result) {
  const t2 = performance.now();
  report({
    loadMs: t1 - t0,
    firstCallMs: t2 - t1,
    totalMs: t2 - t0,
    // performance.now() counts from the process's own start: Node's boot is included here.
    sinceProcessStartMs: t2,
    statusCode: result.statusCode,
  });
}

async function heap(file, count) {
  if (typeof global.gc !== "function") throw new Error("run with --expose-gc");
  const list = events();
  const handler = require(file).handler;
  const statuses = {};
  let sent = 0;
  const drive = async (n) => {
    let next = 0;
    const worker = async () => {
      while (next < n) {
        next++;
        const event = list[sent++ % list.length];
        const result = await handler(event, { awsRequestId: "heap-" + sent });
        statuses[result.statusCode] = (statuses[result.statusCode] || 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
  };
  const settle = () => {
    global.gc();
    global.gc();
    return process.memoryUsage().heapUsed;
  };
  const warmup = Math.max(1000, Math.floor(count / 10));
  await drive(warmup);
  const afterWarmup = settle();
  const checkpoints = [];
  const step = Math.floor(count / 4);
  const t0 = performance.now();
  for (let done = 0; done < count; done += step) {
    await drive(Math.min(step, count - done));
    checkpoints.push(settle());
  }
  report({
    warmupRequests: warmup,
    requests: count,
    heapAfterWarmup: afterWarmup,
    heapCheckpoints: checkpoints,
    rss: process.memoryUsage().rss,
    elapsedMs: performance.now() - t0,
    statuses,
  });
}

/** RESP encoding of one command. */
function resp(args) {
  return (
    "*" +
    args.length +
    "\r\n" +
    args.map((arg) => "$" + Buffer.byteLength(String(arg)) + "\r\n" + String(arg) + "\r\n").join("")
  );
}

// The floor a function's cold start is set against: what any handler must do (start, take the
// event, write one session-sized record to Redis, answer) with nothing loaded but Node's own modules.
async function floor() {
  const event = events()[0];
  const t0 = performance.now();
  const net = require("node:net");
  const { randomUUID } = require("node:crypto");
  const url = new URL(process.env.REDIS_ENDPOINT);
  const handler = () =>
    new Promise((resolve, reject) => {
      const id = randomUUID();
      const now = new Date().toISOString();
      const socket = net.connect(Number(url.port), url.hostname, () => {
        socket.write(
          resp([
            "HSET",
            "wc:{floor}:session:" + id,
            "id",
            id,
            "projectId",
            "floor",
            "status",
            "RUNNING",
            "createdAt",
            now,
            "body",
            event.body || "",
          ]),
        );
      });
      socket.once("data", (data) => {
        socket.destroy();
        if (data[0] !== 58) reject(new Error("HSET answered " + data));
        else
          resolve({
            statusCode: 201,
            body: JSON.stringify({ id, projectId: "floor", status: "RUNNING", createdAt: now }),
          });
      });
      socket.once("error", reject);
    });
  const t1 = performance.now();
  reportColdStart(t0, t1, await handler());
}

function requireOne(name) {
  const t0 = performance.now();
  require(name);
  report({ loadMs: performance.now() - t0 });
}

const [mode, target, count] = process.argv.slice(2);
const run =
  mode === "cold"
    ? () => cold(target)
    : mode === "heap"
      ? () => heap(target, Number(count))
      : mode === "require"
        ? async () => requireOne(target)
        : mode === "floor"
          ? floor
          : () => Promise.reject(new Error("usage: probe.js cold|heap|require|floor <target> [count]"));
run().catch((error) => {
  report({ error: String((error && error.message) || error) });
});
