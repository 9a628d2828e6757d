/**
 * Process control: every process the bench starts (the stack, the floors, the serializer, the
 * fresh-process probes) is tracked here, so the end of the run, or Ctrl-C, stops all of them.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BENCH, ROOT } from "./settings";

/** How a TypeScript entry point is started. */
export const TS_NODE = ["-r", "ts-node/register/transpile-only"];

export type Env = Record<string, string | undefined>;

/** A started server process: it announced its URL with a "ready" message. */
export interface Proc {
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
function spawnTracked(nodeArgs: string[], env: Env): { child: ChildProcess; stderr: () => string } {
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

/** Starts `script` and resolves once it sends `{type: "ready", url}` (within 60 s). */
export function startProcess(
  name: string,
  script: string,
  args: string[],
  env: Env,
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

/** Runs a TypeScript script to its end, its stderr passed through; rejects on a non-zero exit. */
export function runScript(name: string, script: string, args: string[]): Promise<void> {
  return new Promise<void>((done, reject) => {
    const child = spawn(process.execPath, [...TS_NODE, script, ...args], {
      cwd: ROOT,
      stdio: ["ignore", "ignore", "inherit"],
    });
    running.add(child);
    child.once("exit", (code) => {
      running.delete(child);
      if (code === 0) done();
      else reject(new Error(`${name} exited with ${code}`));
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

/** Asks the child to stop (IPC "stop", else SIGTERM); SIGKILL after 10 s. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  if (child.connected) child.send({ type: "stop" });
  else child.kill("SIGTERM");
  if (!(await waitExit(child, 10_000))) {
    child.kill("SIGKILL");
    await waitExit(child, 5_000);
  }
}

/**
 * What the run started besides its child processes (Redis, its client, a temporary home), undone
 * in reverse order after every child process has stopped.
 */
export class Teardown {
  private readonly steps: (() => unknown)[] = [];

  /** `step` runs at the end, before the steps added earlier. */
  add(step: () => unknown): void {
    this.steps.push(step);
  }

  async run(): Promise<void> {
    for (const child of [...running]) await stopProcess(child);
    for (const step of this.steps.splice(0).reverse()) await step();
  }
}

let askId = 0;
/** Sends `{type, id}` to a started process and resolves with its answer of the same type and id. */
export function ask<T>(proc: Proc, type: string): Promise<T> {
  const id = ++askId;
  return new Promise((done) => {
    const listener = (message: { type?: string; id?: number } & T) => {
      if (message?.type === type && message.id === id) {
        proc.child.off("message", listener);
        done(message);
      }
    };
    proc.child.on("message", listener);
    proc.child.send({ type, id });
  });
}

/** The child's monotonic clock in microseconds (the clock its CPU profile uses). */
export async function mark(proc: Proc): Promise<number> {
  return (await ask<{ us: number }>(proc, "mark")).us;
}

/** One fresh `node` process running bench/probe.js; resolves with what it reports. */
export function probe<T>(args: string[], env: Env, execArgv: string[] = []): Promise<T & { wallMs: number }> {
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

let clockTicks = 100;
try {
  clockTicks = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
} catch {
  // not Linux: CPU columns stay empty
}

/** User + system CPU of a process, in ms (Linux /proc), or undefined where unavailable. */
export function cpuMsOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
  } catch {
    return undefined;
  }
}
