/**
 * Cold start: fresh `node` processes, each loading one serialized function (what `pulumi up`
 * uploads) the way Lambda does, with the shared-dependencies layer on NODE_PATH, and answering one
 * request; side by side with today's package (the same function at `BASELINE_COMMIT`, beside
 * node_modules as its package was) and a floor (no npm module, one raw HSET). Each round runs the
 * floor once and every function both ways, so drift on a busy machine hits all alike. Then what a
 * load is made of: each npm module the create package requires, loaded alone from the layer.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { functionEvents } from "../events";
import { median, ms, percentile, round } from "../format";
import {
  BASELINE_COMMIT,
  buildBaselinePackages,
  placeFunction,
  prepareLayerRuntime,
} from "../layer-coldstart";
import { packageOf } from "../package-size";
import type { Phase } from "../phase";
import { probe, type Env } from "../processes";
import { log, ROOT, SETTINGS } from "../settings";
import { notMeasured, TARGETS, type TargetCheck } from "../verdicts";

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
  /** Median over rounds of this run's total over the same round's run of today's package. */
  vsToday?: number;
  /** Median over rounds of this run's total over the same round's floor. */
  vsFloor: number;
  /** The same function at `BASELINE_COMMIT`, run in the same rounds. */
  today?: Omit<ColdStart, "today" | "vsToday">;
}

export interface ModuleLoad {
  module: string;
  /** Where it loads from on Lambda: the layer, or the runtime's own SDK. */
  from: "layer" | "runtime";
  medianMs: number;
}

export interface ColdStartResult {
  coldStarts: ColdStart[];
  /** The floor's own cold start, in the same rounds. */
  floor: Omit<ColdStart, "today" | "vsToday" | "vsFloor">;
  baseline: { commit: string; notMeasured?: string };
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
  wallMs: number;
}

function summarize(name: string, runs: ColdRun[]): Omit<ColdStart, "today" | "vsToday" | "vsFloor"> {
  const totals = runs.map((r) => r.totalMs).sort((a, b) => a - b);
  return {
    function: name,
    runs: runs.length,
    medianMs: round(median(totals), 1),
    p90Ms: round(percentile(totals, 90), 1),
    medianLoadMs: round(median(runs.map((r) => r.loadMs)), 1),
    medianFirstCallMs: round(median(runs.map((r) => r.firstCallMs)), 1),
    medianSinceProcessStartMs: round(median(runs.map((r) => r.sinceProcessStartMs)), 1),
    medianWallMs: round(median(runs.map((r) => r.wallMs)), 1),
    statusCodes: [...new Set(runs.map((r) => r.statusCode))],
  };
}

/** Median over rounds of `mine[i] / theirs[i]`. */
const pairedRatio = (mine: ColdRun[], theirs: ColdRun[]) =>
  round(median(mine.map((r, i) => r.totalMs / theirs[i].totalMs)), 2);

export const coldStartPhase = {
  async run(ctx) {
    const { handlerEnv, releases, serialized, manifest } = ctx;
    const events = functionEvents(ctx);
    const functions = serialized.filter((fn) => {
      if (!events[fn.name]) log(`no cold-start event for ${fn.name}; skipped`);
      return !!events[fn.name];
    });
    // update-session releases a fresh session per process, today's package and the current one.
    if (releases.remaining < SETTINGS.coldRuns * 3) await releases.seed(SETTINGS.coldRuns * 3);

    const work = mkdtempSync(join(tmpdir(), "wc-cold-"));
    mkdirSync(join(ROOT, "node_modules", ".cache"), { recursive: true });
    const beside = mkdtempSync(join(ROOT, "node_modules", ".cache", "wc-cold-baseline-"));
    try {
      // ---- the current packages as Lambda unpacks them, the layer and the runtime's SDK on NODE_PATH
      const runtime = await prepareLayerRuntime(work);
      const files = new Map(
        functions.map((fn) => [
          fn.name,
          placeFunction(work, fn.name, join(ROOT, fn.file), manifest.uploadPaths),
        ]),
      );
      const { NODE_PATH: _ignored, ...baseEnv } = handlerEnv;
      const layerEnv: Env = { ...baseEnv, NODE_PATH: runtime.nodePath };

      // ---- today's package: the same functions serialized at the baseline commit
      log(`serializing today's package (${BASELINE_COMMIT}) in a temporary worktree`);
      const baseline = await buildBaselinePackages(
        functions.map((fn) => fn.name),
        beside,
      );
      const baselineFiles = "files" in baseline ? baseline.files : {};
      if ("notMeasured" in baseline) log(`today's package not measured: ${baseline.notMeasured}`);

      // ---- interleaved rounds: the floor, then each function with the layer and as it was
      log(
        `cold start: ${functions.length} functions x ${SETTINGS.coldRuns}, with today's package and the floor`,
      );
      const floorRuns: ColdRun[] = [];
      const current = new Map<string, ColdRun[]>(functions.map((fn) => [fn.name, []]));
      const today = new Map<string, ColdRun[]>(functions.map((fn) => [fn.name, []]));
      const createEvent = events["create-session"] ?? events[functions[0]?.name];
      for (let i = 0; i < SETTINGS.coldRuns; i++) {
        floorRuns.push(
          await probe<ColdRun>(["floor"], { ...baseEnv, BENCH_EVENTS: JSON.stringify([createEvent()]) }),
        );
        for (const fn of functions) {
          const event = JSON.stringify([events[fn.name]()]);
          current
            .get(fn.name)!
            .push(await probe<ColdRun>(["cold", files.get(fn.name)!], { ...layerEnv, BENCH_EVENTS: event }));
          const old = baselineFiles[fn.name];
          if (old) {
            const oldEvent = JSON.stringify([events[fn.name]()]);
            today
              .get(fn.name)!
              .push(await probe<ColdRun>(["cold", old], { ...baseEnv, BENCH_EVENTS: oldEvent }));
          }
        }
      }
      const coldStarts: ColdStart[] = functions.map((fn) => {
        const runs = current.get(fn.name)!;
        const before = today.get(fn.name)!;
        return {
          ...summarize(fn.name, runs),
          vsFloor: pairedRatio(runs, floorRuns),
          ...(before.length === runs.length
            ? {
                vsToday: pairedRatio(runs, before),
                today: { ...summarize(fn.name, before), vsFloor: pairedRatio(before, floorRuns) },
              }
            : {}),
        };
      });

      // ---- what the load is made of: each npm module of the create package, alone, as Lambda finds it
      log("timing each npm module's require alone, from the layer");
      const createFn = functions.find((f) => f.name === "create-session") ?? functions[0];
      const moduleLoads: ModuleLoad[] = [];
      for (const specifier of (createFn?.requires ?? []).filter((s) => packageOf(s) !== undefined)) {
        let file: string;
        try {
          file = require.resolve(specifier, { paths: runtime.nodePath.split(":") });
        } catch {
          continue;
        }
        const times: number[] = [];
        for (let i = 0; i < 5; i++) {
          times.push((await probe<{ loadMs: number }>(["require", file], layerEnv)).loadMs);
        }
        moduleLoads.push({
          module: packageOf(specifier)!,
          from: file.startsWith(runtime.layerRoot) ? "layer" : "runtime",
          medianMs: round(median(times), 1),
        });
      }
      moduleLoads.sort((a, b) => b.medianMs - a.medianMs);
      return {
        coldStarts,
        floor: summarize("floor", floorRuns),
        baseline: {
          commit: baseline.commit,
          notMeasured:
            "notMeasured" in baseline
              ? baseline.notMeasured
              : baselineFiles["create-session"]
                ? undefined
                : `create-session did not serialize at ${baseline.commit}`,
        },
        moduleLoads,
      };
    } finally {
      rmSync(work, { recursive: true, force: true });
      rmSync(beside, { recursive: true, force: true });
    }
  },

  verdicts({ coldStarts, baseline, floor }, { serializationErrors }) {
    const create = coldStarts.find((cs) => cs.function === "create-session");
    const row: TargetCheck = {
      name: `cold start: create-session vs today's package (${baseline.commit}), load + first call`,
      target: `<= ${TARGETS.coldStartVsToday}x, side by side`,
      measured: "",
      met: false,
    };
    if (!create) return [{ ...row, measured: notMeasured(serializationErrors), unmeasured: true }];
    if (create.vsToday === undefined || !create.today) {
      return [
        { ...row, measured: `not measured: ${baseline.notMeasured ?? "no baseline"}`, unmeasured: true },
      ];
    }
    return [
      {
        ...row,
        measured:
          `${create.vsToday}x (${ms(create.medianMs)} vs ${ms(create.today.medianMs)}; ` +
          `floor ${ms(floor.medianMs)}, ${create.vsFloor}x of it)` +
          (create.statusCodes.some((code) => code >= 300)
            ? `; answered ${create.statusCodes.join("/")}`
            : ""),
        // A cold start that ends in an error answer is not the cold start a client waits for.
        met: create.vsToday <= TARGETS.coldStartVsToday && create.statusCodes.every((code) => code < 300),
      },
    ];
  },
} satisfies Phase<ColdStartResult>;
