/**
 * What every part of `npm run bench` shares: where its files go, how long each measurement runs
 * (BENCH_DURATION, BENCH_ROUNDS and BENCH_COLD_RUNS tune it) and how it reports progress.
 */
import { join, resolve } from "node:path";

export const ROOT = resolve(__dirname, "..");
export const BENCH = join(ROOT, "bench");
/** The serialized functions (removed at the end unless BENCH_KEEP=1). */
export const OUT_DIR = join(BENCH, ".out");
export const PROFILE_DIR = join(BENCH, ".cpuprofile");

function envNumber(name: string, fallback: number): number {
  const value = Number(process.env[name]);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

export const SETTINGS = {
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

/** Progress goes to stderr, so stdout carries the report alone. */
export const log = (message: string) => process.stderr.write(`[bench] ${message}\n`);

export const sleep = (msDelay: number) => new Promise((done) => setTimeout(done, msDelay));
