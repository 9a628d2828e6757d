import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createConnection, createServer } from "node:net";

/** A redis-server child process on loopback. */
export interface RedisServer {
  port: number;
  url: string;
  process: ChildProcess;
  /** Stops the server (SIGTERM, then SIGKILL after 2 s) and waits for it to exit. */
  stop(): Promise<void>;
  /** Kills the server at once (SIGKILL), as a crash would. */
  kill(): Promise<void>;
  /** Starts it again on the same port. */
  restart(): Promise<void>;
}

export const REDIS_INSTALL_HINT =
  "redis-server was not found on PATH. Install Redis 7 (Debian/Ubuntu: `sudo apt-get install -y redis-server`; " +
  "macOS: `brew install redis`), or set REDIS_URL to a running Redis.";

/** A TCP port that is free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function waitForPing(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const socket = createConnection({ host: "127.0.0.1", port });
      let answered = false;
      socket.on("connect", () => socket.write("PING\r\n"));
      socket.on("data", (data) => {
        answered = true;
        socket.destroy();
        if (data.toString().startsWith("+PONG")) resolve();
        else retry();
      });
      socket.on("error", () => {
        if (!answered) retry();
      });
    };
    const retry = () => {
      if (Date.now() > deadline)
        reject(new Error(`redis-server did not answer on port ${port} within ${timeoutMs} ms`));
      else setTimeout(attempt, 25);
    };
    attempt();
  });
}

/**
 * Starts `redis-server` from PATH on a free loopback port, persistence off, data in `dir`.
 * Rejects with REDIS_INSTALL_HINT when the binary is missing.
 */
export async function startRedisServer(options: {
  dir: string;
  port?: number;
  args?: string[];
  /** Called when the server exits without being asked to (it crashed, or something killed it). */
  onUnexpectedExit?: (how: string) => void;
}): Promise<RedisServer> {
  mkdirSync(options.dir, { recursive: true });
  const port = options.port ?? (await freePort());
  let child: ChildProcess;
  let stopping = false;

  const launch = async () => {
    child = spawn(
      "redis-server",
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        options.dir,
        ...(options.args ?? []),
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    const spawned = new Promise<void>((resolve, reject) => {
      child.once("spawn", () => resolve());
      child.once("error", (error: NodeJS.ErrnoException) =>
        reject(error.code === "ENOENT" ? new Error(REDIS_INSTALL_HINT) : error),
      );
    });
    await spawned;
    // Whatever ends this process short of SIGKILL (an uncaught error, process.exit) must not
    // leave the server running behind it: kill it synchronously on the way out.
    const server = child;
    const killOnExit = () => {
      if (server.exitCode === null && server.signalCode === null) server.kill("SIGKILL");
    };
    process.once("exit", killOnExit);
    server.once("exit", (code, signal) => {
      process.removeListener("exit", killOnExit);
      if (!stopping) options.onUnexpectedExit?.(signal ?? `exit code ${code}`);
    });
    await waitForPing(port, 10000);
  };

  const waitExit = (signal: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
      stopping = true;
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const timer = setTimeout(() => child.kill("SIGKILL"), 2000);
      child.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill(signal);
    });

  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get process() {
      return child;
    },
    stop: () => waitExit("SIGTERM"),
    kill: () => waitExit("SIGKILL"),
    restart: async () => {
      await waitExit("SIGTERM");
      stopping = false;
      await launch();
    },
  };
}
