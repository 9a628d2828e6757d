/**
 * What holds a server process up while it answers: its garbage collections (each scavenge and
 * mark-compact, from perf_hooks' gc entries) and how late a 1 ms timer fires on its event loop
 * (monitorEventLoopDelay). The stack and floor processes keep one watch, restarted and read over
 * their IPC channel ("pauses-start", "pauses"), so the open-loop run can set its slow answers
 * against what the server itself paused for.
 */
import {
  constants,
  monitorEventLoopDelay,
  PerformanceObserver,
  type PerformanceEntry,
} from "node:perf_hooks";

export interface PauseStats {
  windowMs: number;
  scavenges: { count: number; meanMs: number; maxMs: number };
  markCompacts: { count: number; maxMs: number };
  /** When a 1 ms timer fired (ms after it was set): lateness is what exceeds 1 ms. */
  timerMs: { p50: number; p99: number; max: number };
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/**
 * Watches this process between `restart` and `read` only: outside a window neither the 1 ms timer
 * nor the GC observer runs, so the throughput runs measure the server without them.
 */
export function watchPauses(): { restart(): void; read(): PauseStats } {
  const timer = monitorEventLoopDelay({ resolution: 1 });
  let minor: number[] = [];
  let major: number[] = [];
  let since = performance.now();
  const record = (entries: PerformanceEntry[]) => {
    for (const entry of entries) {
      const kind = (entry as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) minor.push(entry.duration);
      else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) major.push(entry.duration);
    }
  };
  const observer = new PerformanceObserver((list) => record(list.getEntries()));
  const ms = (ns: number) => round2(ns / 1e6);
  return {
    restart() {
      timer.reset();
      timer.enable();
      observer.observe({ entryTypes: ["gc"] });
      minor = [];
      major = [];
      since = performance.now();
    },
    read() {
      timer.disable();
      // Entries still buffered belong to the window.
      record(observer.takeRecords());
      observer.disconnect();
      const total = minor.reduce((sum, d) => sum + d, 0);
      return {
        windowMs: Math.round(performance.now() - since),
        scavenges: {
          count: minor.length,
          meanMs: minor.length > 0 ? round2(total / minor.length) : 0,
          maxMs: round2(Math.max(0, ...minor)),
        },
        markCompacts: { count: major.length, maxMs: round2(Math.max(0, ...major)) },
        timerMs: { p50: ms(timer.percentile(50)), p99: ms(timer.percentile(99)), max: ms(timer.max) },
      };
    },
  };
}

/** Several windows as one: counts added, means weighted, the worst of each maximum and p99. */
export function mergePauses(windows: PauseStats[]): PauseStats {
  const scavenges = windows.reduce((n, w) => n + w.scavenges.count, 0);
  const scavengeMs = windows.reduce((t, w) => t + w.scavenges.count * w.scavenges.meanMs, 0);
  const worst = (pick: (w: PauseStats) => number) => Math.max(0, ...windows.map(pick));
  return {
    windowMs: windows.reduce((t, w) => t + w.windowMs, 0),
    scavenges: {
      count: scavenges,
      meanMs: scavenges > 0 ? round2(scavengeMs / scavenges) : 0,
      maxMs: worst((w) => w.scavenges.maxMs),
    },
    markCompacts: {
      count: windows.reduce((n, w) => n + w.markCompacts.count, 0),
      maxMs: worst((w) => w.markCompacts.maxMs),
    },
    timerMs: {
      p50: worst((w) => w.timerMs.p50),
      p99: worst((w) => w.timerMs.p99),
      max: worst((w) => w.timerMs.max),
    },
  };
}

/** Answers the bench's "pauses-start" and "pauses" messages (each echoes the message's id). */
export function answerPauseRequests(): void {
  const watch = watchPauses();
  process.on("message", (message: { type?: string; id?: number }) => {
    if (message?.type === "pauses-start") {
      watch.restart();
      process.send?.({ type: "pauses-start", id: message.id });
    }
    if (message?.type === "pauses") process.send?.({ type: "pauses", id: message.id, stats: watch.read() });
  });
}
