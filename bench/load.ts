/**
 * Load generation: closed-loop runs (autocannon, a fixed number of busy connections), open-loop
 * runs (requests due at evenly spaced times), the CPU each side spent, and one run's figures
 * folded over rounds.
 */
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import autocannon from "autocannon";
import { median, percentile, round } from "./format";
import { cpuMsOf } from "./processes";
import { sleep } from "./settings";

/** A server and one request shape to send it. */
export interface LoadTarget {
  key: string;
  label: string;
  /** The server process, whose CPU is counted per request. */
  pid: number;
  /** The Redis server behind it, whose CPU is counted too. */
  redisPid?: number;
  url: string;
  method: "GET" | "POST";
  headers: Record<string, string>;
  body?: string;
  /** Static paths, cycled (each connection walks the list). */
  paths: string[];
  /** A fresh path per request, shared by all connections (release: one id per request). */
  nextPath?: () => string;
}

/** One run against one target. */
export interface RunSample {
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

/** Starts counting the CPU of the server, Redis and this process; the returned function reads it. */
function cpuMeter(target: LoadTarget): () => Pick<RunSample, "serverCpuMs" | "redisCpuMs" | "loadgenCpuMs"> {
  const server0 = cpuMsOf(target.pid);
  const redis0 = cpuMsOf(target.redisPid);
  const loadgen0 = process.cpuUsage();
  return () => {
    const server1 = cpuMsOf(target.pid);
    const redis1 = cpuMsOf(target.redisPid);
    const loadgen = process.cpuUsage(loadgen0);
    return {
      serverCpuMs: server0 !== undefined && server1 !== undefined ? server1 - server0 : undefined,
      redisCpuMs: redis0 !== undefined && redis1 !== undefined ? redis1 - redis0 : undefined,
      loadgenCpuMs: (loadgen.user + loadgen.system) / 1000,
    };
  };
}

/** Closed loop: `connections` connections, each sending its next request when answered. */
export function runLoad(target: LoadTarget, connections: number, durationS: number): Promise<RunSample> {
  const latencies: number[] = [];
  const cpu = cpuMeter(target);
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
      const used = cpu();
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
        ...used,
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
export async function pacedLoad(
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
  const cpu = cpuMeter(target);
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
  return {
    connections,
    elapsedS,
    ok,
    non2xx,
    errors,
    timeouts: pending,
    rps: ok / elapsedS,
    latencies,
    ...cpu(),
  };
}

/** One row of the throughput table: a target at one connection count, over all its rounds. */
export interface Aggregate {
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

export function aggregate(target: LoadTarget, samples: RunSample[]): Aggregate {
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

/** One request with an API key and a JSON body; the answer's status and parsed JSON. */
export async function apiRequest(
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
