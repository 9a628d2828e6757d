/**
 * `npm run bench`: the API's speed and size against the physical floor, in one run.
 *
 * `setUp` starts Redis, serializes the functions (`serializeFunction(factory, {isFactoryFunction:
 * true})`, what `pulumi up` uploads) and starts the local stack and two floors (bare node:http
 * servers, each its own process: A does one HSET of a session-sized record, B runs the create
 * path's own Lua script). Then the phases, in this order (bench/phases/):
 *
 * 1. throughput: autocannon on loopback at 1, 8 and 32 connections of create, retrieve, list and
 *    release, interleaved with the floors; create and floor A at a fixed offered load (open loop);
 * 2. round trips: Redis round trips per request, via MONITOR;
 * 3. memory: Redis memory per session;
 * 3b. handover: a freed slot reaching a waiting create (Prefer: wait), and what waiters cost Redis;
 * 4. profiles: `--cpu-prof` of the stack under create, list (and retrieve if it missed);
 * 5. cold start: 20 fresh processes per function, each loading its package with the dependency
 *    layer and answering once, interleaved with today's package (the same function at the commit
 *    before the layer) and a floor that loads no npm module;
 * 6. heap: handler heap before and after 10,000 requests;
 * 7. pieces: CPU of the pieces of a request, in this process;
 * 8. packages: package sizes, zipped and unzipped, and the layer's.
 *
 * Each phase gives its rows of the targets table (bench/verdicts.ts); the report (bench/report.ts)
 * goes to stdout, bench/results.json and docs/benchmarks.md. Everything runs on 127.0.0.1 and
 * everything started is stopped at the end. BENCH_DURATION (seconds per run, default 2),
 * BENCH_ROUNDS (default 3), BENCH_COLD_RUNS (default 20) and BENCH_KEEP=1 (keep bench/.out) tune it.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { round } from "./format";
import { coldStartPhase } from "./phases/cold-start";
import { handoverPhase } from "./phases/handover";
import { heapPhase } from "./phases/heap";
import { memoryPhase } from "./phases/memory";
import { packagePhase } from "./phases/packages";
import { piecesPhase } from "./phases/pieces";
import { profilePhase } from "./phases/profiles";
import { roundTripPhase } from "./phases/round-trips";
import { throughputPhase } from "./phases/throughput";
import { Teardown } from "./processes";
import { currentCommit, describeMachine, renderReport, resultsJson, type ReportInput } from "./report";
import { BENCH, log, OUT_DIR, ROOT } from "./settings";
import { setUp, stopLoadTargets } from "./setup";
import { serializationVerdicts, type TargetCheck } from "./verdicts";

async function main(): Promise<void> {
  const started = performance.now();
  const loadAtStart = loadavg().map((x) => round(x, 2));
  if (loadAtStart[0] > 0.5 * cpus().length) {
    log(`warning: load average ${loadAtStart.join(" ")} before the run: other work will skew the figures`);
  }
  const home = mkdtempSync(join(tmpdir(), "wc-bench-"));
  const teardown = new Teardown();
  teardown.add(() => {
    if (process.env.BENCH_KEEP !== "1") rmSync(OUT_DIR, { recursive: true, force: true });
  });
  teardown.add(() => rmSync(home, { recursive: true, force: true }));
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    log("interrupted: stopping everything started");
    void teardown.run().then(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    const ctx = await setUp(home, teardown);

    // ---- against the stack and the floors
    const throughput = await throughputPhase.run(ctx);
    const roundTrips = await roundTripPhase.run(ctx);
    const memory = await memoryPhase.run(ctx);
    const handover = await handoverPhase.run(ctx);
    await stopLoadTargets(ctx);

    // ---- each in processes of its own
    const profiles = await profilePhase(throughput.ratios).run(ctx);
    const cold = await coldStartPhase.run(ctx);
    const heap = await heapPhase.run(ctx);
    const pieces = await piecesPhase.run();
    const packages = await packagePhase.run(ctx);

    // ---- verdicts: issue 15's targets first (cold start, package, layer, tail, throughput, round trips)
    const checks: TargetCheck[] = [
      ...coldStartPhase.verdicts(cold, ctx),
      ...packagePhase.verdicts(packages, ctx),
      ...throughputPhase.verdicts(throughput),
      ...roundTripPhase.verdicts(roundTrips),
      ...serializationVerdicts(ctx.serializationErrors),
      ...memoryPhase.verdicts(memory),
      ...heapPhase.verdicts(heap, ctx),
      ...handoverPhase.verdicts(handover),
    ];

    // ---- output
    const machine = describeMachine(loadAtStart, ctx.redisVersion);
    const elapsedS = round((performance.now() - started) / 1000, 0);
    const report: ReportInput = {
      machine,
      commit: currentCommit(),
      results: throughput.rows,
      ratios: throughput.ratios,
      roundTrips,
      coldStarts: cold.coldStarts,
      coldFloor: cold.floor,
      baseline: cold.baseline,
      moduleLoads: cold.moduleLoads,
      packages: packages.functions,
      layer: packages.layer,
      memory,
      heap,
      handover,
      pauses: throughput.pauses,
      tailRatios: throughput.tailRatios,
      checks,
      profiles,
      pieces,
      c: throughput.connections,
      releasesReused: ctx.releases.reused,
      serializationErrors: ctx.serializationErrors,
      elapsedS,
    };
    const output = renderReport(report);
    process.stdout.write(output.text + "\n");
    writeFileSync(join(BENCH, "results.json"), JSON.stringify(resultsJson(report), null, 2) + "\n");
    mkdirSync(join(ROOT, "docs"), { recursive: true });
    writeFileSync(join(ROOT, "docs", "benchmarks.md"), output.markdown);
    log(`done in ${elapsedS} s: bench/results.json and docs/benchmarks.md written`);
  } finally {
    await teardown.run();
  }
}

main().then(
  () => process.exit(0),
  (error: Error) => {
    console.error(`bench failed: ${error.stack ?? error.message}`);
    process.exit(1);
  },
);
