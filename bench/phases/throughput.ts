/**
 * Throughput and latency: every load target at each connection count, in interleaved rounds,
 * each run's req/s set against the floors' runs of the same round; then create at a fixed
 * offered load (open loop), half its closed-loop maximum, in rounds with floor A at the same load,
 * each server reporting what it paused for meanwhile (bench/pauses.ts).
 */
import { median, ms, percentile, round } from "../format";
import { aggregate, pacedLoad, runLoad, type Aggregate, type RunSample } from "../load";
import { mergePauses, type PauseStats } from "../pauses";
import type { Phase } from "../phase";
import { ask, type Proc } from "../processes";
import { log, SETTINGS } from "../settings";
import { TARGETS } from "../verdicts";

export interface ThroughputResult {
  /** One row per target and connection count, then the open-loop row. */
  rows: Aggregate[];
  /** The connection count the ratios and verdicts are taken at (the largest). */
  connections: number;
  openLoop: Aggregate;
  /** Floor A at the same offered load, from the same generator. */
  floorOpenLoop: Aggregate;
  /** Each open-loop run's p99 over its p50, in round order. */
  tailRatios: { create: number[]; floorA: number[] };
  /** What the stack and floor A paused for during their open-loop runs (all rounds). */
  pauses: { create: PauseStats; floorA: PauseStats };
  openRate: number;
  ratios: { connections: number; createVsFloorA: number; createVsFloorB: number; retrieveVsFloorA: number };
}

/** The row of `key` at `connections`. */
export function rowAt(rows: Aggregate[], key: string, connections: number): Aggregate {
  return rows.find((r) => r.target === key && r.connections === connections)!;
}

export const throughputPhase = {
  async run(ctx) {
    const { targets, releases } = ctx;
    let releaseRpsSeen = 6000;
    /** Enough unreleased sessions for `seconds` of release at the fastest rate seen, and half again. */
    const topUpReleasePool = async (seconds: number) => {
      const need = Math.ceil(releaseRpsSeen * seconds * 1.5) - releases.remaining;
      if (need > 0) await releases.seed(need);
    };

    // ---- warm-up, then interleaved rounds
    log("warming up every target");
    for (const target of targets) {
      if (target.key === "release") await topUpReleasePool(SETTINGS.warmupS);
      await runLoad(target, 8, SETTINGS.warmupS);
    }
    const samples = new Map<string, RunSample[]>();
    const totalRuns = SETTINGS.rounds * SETTINGS.connections.length * targets.length;
    let runNo = 0;
    for (let roundNo = 0; roundNo < SETTINGS.rounds; roundNo++) {
      // Odd rounds run the targets in reverse order, so drift over the run hits all alike.
      const order = roundNo % 2 === 0 ? targets : [...targets].reverse();
      for (const connections of SETTINGS.connections) {
        for (const target of order) {
          runNo++;
          if (target.key === "release") await topUpReleasePool(SETTINGS.durationS);
          const sample = await runLoad(target, connections, SETTINGS.durationS);
          if (target.key === "release") releaseRpsSeen = Math.max(releaseRpsSeen, sample.rps);
          const key = `${target.key}@${connections}`;
          samples.set(key, [...(samples.get(key) ?? []), sample]);
          log(
            `run ${runNo}/${totalRuns}: ${target.label} c=${connections}: ${Math.round(sample.rps)} req/s` +
              (sample.non2xx + sample.errors > 0
                ? ` (${sample.non2xx} non-2xx, ${sample.errors} errors)`
                : ""),
          );
        }
      }
    }
    const rows: Aggregate[] = [];
    for (const target of targets) {
      for (const connections of SETTINGS.connections) {
        rows.push(aggregate(target, samples.get(`${target.key}@${connections}`)!));
      }
    }
    // Ratios pair each run with the floor run of the same round (minutes apart at most), and take
    // the median over rounds: other load on the machine then moves both sides of a ratio alike.
    const ratio = (key: string, floor: string, connections: number) => {
      const mine = samples.get(`${key}@${connections}`)!;
      const theirs = samples.get(`${floor}@${connections}`)!;
      return round(median(mine.map((s, i) => s.rps / theirs[i].rps)), 3);
    };
    for (const r of rows) {
      r.vsFloorA = ratio(r.target, "floorA", r.connections);
      r.vsFloorB = ratio(r.target, "floorB", r.connections);
    }
    const c = Math.max(...SETTINGS.connections);

    // ---- create's latency at a fixed offered load (open loop), half its closed-loop maximum: with
    // c connections always busy, latency is c / throughput (Little's law), not the service time.
    // Floor A then gets the same offered load from the same generator: what the generator and the
    // machine's other work add to any server's tail. Each server reports what it paused for meanwhile.
    // Rounds alternate which goes first; the verdict takes the median over rounds of each run's
    // p99/p50 (one run of a few seconds on a shared machine swings between rounds).
    const openRate = Math.max(1, Math.round(rowAt(rows, "create", c).rps / 2));
    const openRuns = { create: [] as RunSample[], floorA: [] as RunSample[] };
    const openPauses = { create: [] as PauseStats[], floorA: [] as PauseStats[] };
    const open = async (key: "create" | "floorA", proc: Proc) => {
      const target = targets.find((t) => t.key === key)!;
      log(`${target.label} at a steady ${openRate} req/s (open loop) over up to ${c} connections`);
      await ask(proc, "pauses-start");
      openRuns[key].push(await pacedLoad(target, c, SETTINGS.durationS * 2, openRate));
      openPauses[key].push((await ask<{ stats: PauseStats }>(proc, "pauses")).stats);
    };
    for (let roundNo = 0; roundNo < SETTINGS.rounds; roundNo++) {
      if (roundNo % 2 === 0) {
        await open("create", ctx.stack);
        await open("floorA", ctx.floorA);
      } else {
        await open("floorA", ctx.floorA);
        await open("create", ctx.stack);
      }
    }
    const openRow = (key: "create" | "floorA") => {
      const target = targets.find((t) => t.key === key)!;
      return {
        ...aggregate(target, openRuns[key]),
        target: `${key}OpenLoop`,
        label: `${target.label}, ${openRate} req/s offered`,
      };
    };
    const tailRatio = (run: RunSample) => {
      const sorted = [...run.latencies].sort((a, b) => a - b);
      return sorted.length > 0 ? round(percentile(sorted, 99) / percentile(sorted, 50), 1) : NaN;
    };
    const openLoop = openRow("create");
    const floorOpenLoop = openRow("floorA");
    rows.push(openLoop, floorOpenLoop);

    const create = rowAt(rows, "create", c);
    return {
      rows,
      connections: c,
      openLoop,
      floorOpenLoop,
      tailRatios: { create: openRuns.create.map(tailRatio), floorA: openRuns.floorA.map(tailRatio) },
      pauses: { create: mergePauses(openPauses.create), floorA: mergePauses(openPauses.floorA) },
      openRate,
      ratios: {
        connections: c,
        createVsFloorA: round(create.vsFloorA!, 3),
        createVsFloorB: round(create.vsFloorB!, 3),
        retrieveVsFloorA: round(rowAt(rows, "retrieve", c).vsFloorA!, 3),
      },
    };
  },

  verdicts({ rows, connections: c, openLoop, tailRatios, openRate }) {
    const create = rowAt(rows, "create", c);
    const createRatioA = create.vsFloorA!;
    const createRatioB = create.vsFloorB!;
    const retrieveRatioA = rowAt(rows, "retrieve", c).vsFloorA!;
    const tail = median(tailRatios.create);
    const runs = (ratios: number[]) => ratios.map((r) => `${r}x`).join(", ");
    return [
      {
        name: `create vs floor A (c=${c})`,
        target: `>= ${TARGETS.createVsFloorA}x`,
        measured: `${round(createRatioA, 2)}x`,
        met: createRatioA >= TARGETS.createVsFloorA,
      },
      {
        name: `create vs floor B (c=${c})`,
        target: `>= ${TARGETS.createVsFloorB}x`,
        measured: `${round(createRatioB, 2)}x`,
        met: createRatioB >= TARGETS.createVsFloorB,
      },
      {
        name: `create open-loop p99 over p50 (${openRate} req/s offered, half of c=${c}; median of ${tailRatios.create.length} runs)`,
        target: `< ${TARGETS.createOpenLoopP99OverP50}x`,
        measured:
          openLoop.rps > 0
            ? `${round(tail, 1)}x (runs ${runs(tailRatios.create)}; all runs: p99 ${ms(openLoop.p99)}, p50 ${ms(openLoop.p50)}; ` +
              `floor A at the same load ${round(median(tailRatios.floorA), 1)}x)`
            : `no 2xx answer (${openLoop.non2xx} non-2xx, ${openLoop.errors} errors)`,
        met: openLoop.rps > 0 && tail < TARGETS.createOpenLoopP99OverP50,
      },
      {
        name: `retrieve vs floor A (c=${c})`,
        target: `>= ${TARGETS.retrieveVsFloorA}x`,
        measured: `${round(retrieveRatioA, 2)}x`,
        met: retrieveRatioA >= TARGETS.retrieveVsFloorA,
      },
    ];
  },
} satisfies Phase<ThroughputResult>;
