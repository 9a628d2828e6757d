/**
 * Handler heap: one fresh `node --expose-gc` process per function answers 10,000 requests with
 * its serialized package, reading the heap after a gc at each checkpoint.
 */
import { join } from "node:path";
import { functionEvents, getSessionEvent, type ProbeEvent } from "../events";
import { bytes } from "../format";
import type { Phase } from "../phase";
import { probe } from "../processes";
import type { BenchContext } from "../setup";
import { log, ROOT, SETTINGS } from "../settings";
import { notMeasured, TARGETS } from "../verdicts";

export interface HeapResult {
  function: string;
  warmupRequests: number;
  requests: number;
  heapAfterWarmup: number;
  heapCheckpoints: number[];
  growthBytes: number;
  statuses: Record<string, number>;
}

/** The functions measured, each with the events it cycles through. */
function heapEvents(ctx: BenchContext): Record<string, () => ProbeEvent[]> {
  return {
    "create-session": () => [functionEvents(ctx)["create-session"]()],
    "get-session": () => ctx.listIds.slice(0, 20).map((id) => getSessionEvent(ctx, id)),
  };
}

export const heapPhase = {
  async run(ctx) {
    const heap: HeapResult[] = [];
    for (const [name, makeEvents] of Object.entries(heapEvents(ctx))) {
      const fn = ctx.serialized.find((f) => f.name === name);
      if (!fn) continue;
      log(`heap: ${name} x ${SETTINGS.heapRequests}`);
      const result = await probe<Omit<HeapResult, "function" | "growthBytes">>(
        ["heap", join(ROOT, fn.file), String(SETTINGS.heapRequests)],
        { ...ctx.handlerEnv, BENCH_EVENTS: JSON.stringify(makeEvents()) },
        ["--expose-gc"],
      );
      heap.push({
        function: name,
        warmupRequests: result.warmupRequests,
        requests: result.requests,
        heapAfterWarmup: result.heapAfterWarmup,
        heapCheckpoints: result.heapCheckpoints,
        growthBytes: result.heapCheckpoints[result.heapCheckpoints.length - 1] - result.heapAfterWarmup,
        statuses: result.statuses,
      });
    }
    return heap;
  },

  verdicts(heap, { serializationErrors }) {
    const worst = heap.length ? heap.reduce((a, b) => (b.growthBytes > a.growthBytes ? b : a)) : undefined;
    return [
      {
        name: `heap growth over ${SETTINGS.heapRequests} requests (worst: ${worst?.function ?? "-"})`,
        target: `< ${bytes(TARGETS.heapGrowthBytes)}`,
        measured: worst
          ? `${worst.growthBytes < 0 ? "-" : "+"}${bytes(Math.abs(worst.growthBytes))}`
          : notMeasured(serializationErrors),
        met: !!worst && worst.growthBytes < TARGETS.heapGrowthBytes,
      },
    ];
  },
} satisfies Phase<HeapResult[]>;
