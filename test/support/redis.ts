import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startRedisServer, type RedisServer } from "../../local/redis-server";

let shared: Promise<RedisServer> | undefined;
const dirs: string[] = [];
const started: RedisServer[] = [];

/** A real redis-server for this test run, started on a free port on first use and shared by all files. */
export function sharedRedis(): Promise<RedisServer> {
  shared ??= startOwnRedis();
  return shared;
}

/** A redis-server of the caller's own (for tests that kill or restart it). Stopped after the run. */
export async function startOwnRedis(args: string[] = []): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), "wc-redis-"));
  dirs.push(dir);
  const server = await startRedisServer({ dir, args });
  started.push(server);
  return server;
}

/** Stops every server the run started and removes their folders (root afterAll hook). */
export async function stopAllRedis(): Promise<void> {
  await Promise.all(started.map((server) => server.stop()));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}
