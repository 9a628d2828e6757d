/**
 * Cold start: fresh `node` processes, each loading one serialized function (what `pulumi up`
 * uploads) and answering one request; then what that load is made of, each npm module of the
 * create package required alone.
 */
import { join } from "node:path";
import { functionEvents } from "../events";
import { median, ms, percentile, round } from "../format";
import { packageOf } from "../package-size";
import type { Phase } from "../phase";
import { probe } from "../processes";
import { log, ROOT, SETTINGS } from "../settings";
import { notMeasured, TARGETS } from "../verdicts";

export interface ColdStart {
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

export interface ModuleLoad {
  module: string;
  medianMs: number;
}

export interface ColdStartResult {
  coldStarts: ColdStart[];
  /** Slowest first. */
  moduleLoads: ModuleLoad[];
}

/** What probe.js reports for one cold start. */
interface ColdRun {
  loadMs: number;
  firstCallMs: number;
  totalMs: number;
  sinceProcessStartMs: number;
  statusCode: number;
}

export const coldStartPhase = {
  async run(ctx) {
    const { handlerEnv, releases, serialized } = ctx;
    const events = functionEvents(ctx);
    // update-session releases a fresh session per process.
    if (releases.remaining < SETTINGS.coldRuns * 2) await releases.seed(SETTINGS.coldRuns * 2);
    const coldStarts: ColdStart[] = [];
    for (const fn of serialized) {
      const makeEvent = events[fn.name];
      if (!makeEvent) {
        log(`no cold-start event for ${fn.name}; skipped`);
        continue;
      }
      log(`cold start: ${fn.name} x ${SETTINGS.coldRuns}`);
      const runs: (ColdRun & { wallMs: number })[] = [];
      for (let i = 0; i < SETTINGS.coldRuns; i++) {
        runs.push(
          await probe<ColdRun>(["cold", join(ROOT, fn.file)], {
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
    const moduleLoads: ModuleLoad[] = [];
    for (const specifier of (createFn?.requires ?? []).filter((s) => packageOf(s) !== undefined)) {
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        times.push((await probe<{ loadMs: number }>(["require", specifier], handlerEnv)).loadMs);
      }
      moduleLoads.push({ module: packageOf(specifier)!, medianMs: round(median(times), 1) });
    }
    moduleLoads.sort((a, b) => b.medianMs - a.medianMs);
    return { coldStarts, moduleLoads };
  },

  verdicts({ coldStarts }, { serializationErrors }) {
    const worst = coldStarts.length
      ? coldStarts.reduce((a, b) => (b.medianMs > a.medianMs ? b : a))
      : undefined;
    return [
      {
        name: `cold start median (worst: ${worst?.function ?? "-"})`,
        target: `< ${TARGETS.coldStartMs} ms`,
        measured: worst ? ms(worst.medianMs) : notMeasured(serializationErrors),
        met: !!worst && worst.medianMs < TARGETS.coldStartMs,
      },
    ];
  },
} satisfies Phase<ColdStartResult>;
