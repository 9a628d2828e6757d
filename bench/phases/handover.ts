/**
 * Waiting for a slot (`Prefer: wait`): how long a freed slot takes to reach a waiter, and what
 * waiters cost Redis while nothing frees.
 *
 * - Handover: the queue project allows one live session. Each round queues one waiting create,
 *   waits until Redis holds it in the queue, then releases the live session through the API; the
 *   time from sending that release to the waiter's 201 is one sample.
 * - Idle cost: `waiters` creates wait on a full project for `seconds` while nothing frees; the
 *   Redis commands they send (and those their scripts run), from MONITOR, less the same window
 *   without waiters, per waiter per second.
 */
import { keys } from "../../lib/store";
import { ms, percentile, round } from "../format";
import { apiRequest } from "../load";
import { monitorCommands } from "../monitor";
import type { Phase } from "../phase";
import { log, sleep } from "../settings";
import type { BenchContext } from "../setup";
import { PROJECTS } from "../workload";

export interface HandoverResult {
  rounds: number;
  handoverP50Ms: number;
  handoverP99Ms: number;
  /** The release request's own latency, for scale. */
  releaseP50Ms: number;
  idleWaiters: number;
  idleSeconds: number;
  /** Commands clients sent (round trips: BLPOPs and scripts), less the same window without waiters. */
  commandsPerWaiterPerSecond: number;
  /** Commands those scripts ran inside Redis. */
  scriptedCommandsPerWaiterPerSecond: number;
}

/** A create that waits (`Prefer: wait=<s>`), answered with its status, id and when it arrived. */
async function waitingCreate(url: string, apiKey: string, waitS: number) {
  const response = await fetch(`${url}/v1/sessions`, {
    method: "POST",
    headers: { "x-bb-api-key": apiKey, "content-type": "application/json", prefer: `wait=${waitS}` },
    body: "{}",
  });
  const arrived = performance.now();
  const json = (await response.json()) as { id?: string };
  return { status: response.status, id: json.id, arrived };
}

async function queueHolds(ctx: BenchContext, n: number): Promise<void> {
  while ((await ctx.admin.zcard(keys.queue(PROJECTS.queue))) < n) await sleep(1);
}

/**
 * Commands Redis received from clients, and ran inside scripts, during `seconds`: MONITOR marks a
 * script's own commands with the source "lua".
 */
async function commandsDuring(
  ctx: BenchContext,
  seconds: number,
): Promise<{ sent: number; scripted: number }> {
  const counts = { sent: 0, scripted: 0 };
  const monitor = await monitorCommands(ctx.redisUrl, (_name, source) => {
    if (source === "lua") counts.scripted++;
    else counts.sent++;
  });
  await sleep(seconds * 1000);
  monitor.stop();
  return counts;
}

export const handoverPhase = {
  async run(ctx) {
    const url = ctx.stack.url;
    const apiKey = ctx.apiKeys.queue;
    const rounds = Number(process.env.BENCH_HANDOVER_ROUNDS ?? 200);
    log(`slot handover: ${rounds} releases, each to a waiting create`);
    const first = await apiRequest(`${url}/v1/sessions`, "POST", apiKey, {});
    if (first.status !== 201) throw new Error(`the queue project's first create answered ${first.status}`);
    let holder = String(first.json.id);
    const handovers: number[] = [];
    const releases: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const waiter = waitingCreate(url, apiKey, 20);
      await queueHolds(ctx, 1);
      const sent = performance.now();
      const released = await apiRequest(`${url}/v1/sessions/${holder}`, "POST", apiKey, {
        status: "REQUEST_RELEASE",
      });
      releases.push(performance.now() - sent);
      if (released.status !== 200) throw new Error(`release answered ${released.status}`);
      const got = await waiter;
      if (got.status !== 201 || !got.id) throw new Error(`a waiting create answered ${got.status}`);
      handovers.push(got.arrived - sent);
      holder = got.id;
    }
    handovers.sort((a, b) => a - b);
    releases.sort((a, b) => a - b);

    // Idle: the project is full (holder is live) and nothing is released.
    const idleWaiters = 20;
    const idleSeconds = Number(process.env.BENCH_HANDOVER_IDLE_S ?? 10);
    log(`waiters' idle cost: ${idleWaiters} waiters for ${idleSeconds} s, against the same time without`);
    const baseline = await commandsDuring(ctx, idleSeconds);
    const waiting = Array.from({ length: idleWaiters }, () => waitingCreate(url, apiKey, idleSeconds + 5));
    await queueHolds(ctx, idleWaiters);
    const during = await commandsDuring(ctx, idleSeconds);
    const perWaiterSecond = (n: number, base: number) =>
      round(Math.max(0, n - base) / (idleWaiters * idleSeconds), 3);
    // Let them go: one release hands the slot to the first; the rest give up at their deadline.
    await apiRequest(`${url}/v1/sessions/${holder}`, "POST", apiKey, { status: "REQUEST_RELEASE" });
    await Promise.all(waiting);
    return {
      rounds,
      handoverP50Ms: round(percentile(handovers, 50), 2),
      handoverP99Ms: round(percentile(handovers, 99), 2),
      releaseP50Ms: round(percentile(releases, 50), 2),
      idleWaiters,
      idleSeconds,
      commandsPerWaiterPerSecond: perWaiterSecond(during.sent, baseline.sent),
      scriptedCommandsPerWaiterPerSecond: perWaiterSecond(during.scripted, baseline.scripted),
    };
  },
  verdicts(result) {
    return [
      {
        name: "slot handover: release → waiter's 201, p50 / p99",
        target: "reported (no target)",
        measured: `${ms(result.handoverP50Ms)} / ${ms(result.handoverP99Ms)} (release alone p50 ${ms(result.releaseP50Ms)})`,
        met: true,
      },
      {
        name: "Redis commands sent per waiting create per second (nothing freeing)",
        target: "< 1 (woken by the release, not by polling)",
        measured: `${result.commandsPerWaiterPerSecond} (${result.scriptedCommandsPerWaiterPerSecond} inside scripts)`,
        met: result.commandsPerWaiterPerSecond < 1,
      },
    ];
  },
} satisfies Phase<HandoverResult>;
