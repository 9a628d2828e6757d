/**
 * Load generation: closed-loop runs (autocannon, a fixed number of busy connections), open-loop
 * runs (requests due at evenly spaced times), the CPU each side spent, and one run's figures
 * folded over rounds.
 */
import { createConnection, type Socket } from "node:net";
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

/** One keep-alive connection of the open-loop generator, and the request it is waiting on. */
interface PacedConnection {
  socket: Socket;
  /** When the request in flight was due (undefined: the connection is free). */
  due?: number;
  /** Bytes of the answer read so far (headers, then as much of the body as has come). */
  pending: Buffer;
  /** Where the body starts, once the headers are read. */
  bodyStart?: number;
  /** Total length of the answer when it has a Content-Length (else it is chunked). */
  answerBytes?: number;
  status?: number;
}

const HEADER_END = Buffer.from("\r\n\r\n");

/**
 * Open-loop load: requests leave at evenly spaced times (`rate` per second) over at most
 * `connections` keep-alive connections, whatever the answers do; latency is counted from when each
 * request was due, so queueing behind a slow answer (or for a free connection) is in it.
 * (autocannon's own rate limit sends each second's quota in one burst, which measures bursts, not a
 * steady load.)
 *
 * The requests are pre-encoded HTTP/1.1 written to raw sockets, and an answer is read by its
 * status line and Content-Length or chunked framing (the two that the servers measured here send). node:http's client cost
 * about as much CPU per request as the floor server answering it (150-270 µs), on a machine whose
 * two cores the generator, the server and Redis share: its own CPU and GC pauses showed up as
 * the servers' tail (a floor that does one HSET had a p99 of 5-16x its p50 at 1,200 req/s).
 */
export async function pacedLoad(
  target: LoadTarget,
  connections: number,
  durationS: number,
  rate: number,
): Promise<RunSample> {
  const url = new URL(target.url);
  const port = Number(url.port) || 80;
  const body = target.body === undefined ? undefined : Buffer.from(target.body);
  const fixedHeaders =
    `Host: ${url.host}\r\n` +
    Object.entries(target.headers)
      .filter(([name]) => !/^(host|content-length|connection)$/i.test(name))
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join("") +
    (body ? `Content-Length: ${body.length}\r\n` : "") +
    "Connection: keep-alive\r\n\r\n";
  const encode = (path: string): Buffer => {
    const head = Buffer.from(`${target.method} ${path} HTTP/1.1\r\n${fixedHeaders}`);
    return body ? Buffer.concat([head, body]) : head;
  };
  const fixedRequest = target.nextPath ? undefined : encode(target.paths[0]);
  const latencies: number[] = [];
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let pending = 0;
  /** Due times of requests waiting for a free connection, oldest first. */
  const queue: number[] = [];
  let queueHead = 0;
  /** Free connections, the most recently used last (reused first, as node's agent does). */
  const free: PacedConnection[] = [];
  const all = new Set<PacedConnection>();
  let opening = 0;
  let stopped = false;

  const write = (connection: PacedConnection, due: number) => {
    connection.due = due;
    connection.pending = Buffer.alloc(0);
    connection.bodyStart = undefined;
    connection.answerBytes = undefined;
    connection.socket.write(fixedRequest ?? encode(target.nextPath!()));
  };
  const finish = (connection: PacedConnection, code: number) => {
    const due = connection.due!;
    connection.due = undefined;
    pending--;
    if (code >= 200 && code < 300) {
      ok++;
      latencies.push(performance.now() - due);
    } else non2xx++;
    if (queueHead < queue.length) write(connection, queue[queueHead++]);
    else free.push(connection);
  };
  const onData = (connection: PacedConnection, chunk: Buffer) => {
    connection.pending = connection.pending.length === 0 ? chunk : Buffer.concat([connection.pending, chunk]);
    const answer = connection.pending;
    if (connection.bodyStart === undefined) {
      const end = answer.indexOf(HEADER_END);
      if (end === -1) return;
      const head = answer.subarray(0, end).toString("latin1");
      connection.status = Number(head.slice(9, 12));
      connection.bodyStart = end + HEADER_END.length;
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      connection.answerBytes = length ? connection.bodyStart + Number(length[1]) : undefined;
      if (!length && !/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
        connection.socket.destroy(new Error("an answer with neither Content-Length nor chunked encoding"));
        return;
      }
    }
    if (connection.answerBytes === undefined) {
      // Chunked: walk the chunk sizes to the last (empty) chunk; this API sends no trailers.
      let at = connection.bodyStart;
      for (;;) {
        const lineEnd = answer.indexOf("\r\n", at);
        if (lineEnd === -1) return;
        const size = parseInt(answer.subarray(at, lineEnd).toString("latin1"), 16);
        if (!Number.isFinite(size)) {
          connection.socket.destroy(new Error("a malformed chunk size"));
          return;
        }
        if (size === 0) {
          if (answer.length < lineEnd + 4) return;
          break;
        }
        at = lineEnd + 2 + size + 2;
        if (at > answer.length) return;
      }
    } else if (answer.length < connection.answerBytes) return;
    finish(connection, connection.status!);
  };
  const open = () => {
    opening++;
    const connection: PacedConnection = {
      socket: createConnection({ host: url.hostname, port, noDelay: true }),
      pending: Buffer.alloc(0),
    };
    connection.socket.once("connect", () => {
      opening--;
      all.add(connection);
      if (queueHead < queue.length) write(connection, queue[queueHead++]);
      else free.push(connection);
    });
    connection.socket.on("data", (chunk: Buffer) => onData(connection, chunk));
    connection.socket.on("error", () => undefined);
    connection.socket.once("close", () => {
      const connected = all.delete(connection);
      if (!connected) opening--;
      const index = free.indexOf(connection);
      if (index !== -1) free.splice(index, 1);
      if (connection.due !== undefined) {
        connection.due = undefined;
        pending--;
        errors++;
      }
      // Queued work goes to a new connection when the server closed one that worked (an idle
      // keep-alive one, say); one that never connected is not retried.
      if (!stopped && connected && queueHead < queue.length && all.size + opening < connections) open();
    });
  };
  const send = (due: number) => {
    pending++;
    const connection = free.pop();
    if (connection) return write(connection, due);
    queue.push(due);
    if (all.size + opening < connections) open();
  };

  const cpu = cpuMeter(target);
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
  stopped = true;
  for (const connection of all) connection.socket.destroy();
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
