/**
 * Reads a V8 `.cpuprofile` (from `node --cpu-prof`) and summarises where the samples in a time
 * window went: top functions by self time, and self time by package (zod, jose, ioredis, the
 * repository's own modules, Node internals, GC). File names are printed relative to the repository.
 */
import { readFileSync } from "node:fs";
import { sep } from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Frame {
  frame: string;
  group: string;
  selfPct: number;
  selfMs: number;
}

export interface ProfileSummary {
  /** Busy time in the window (idle samples excluded), ms. */
  busyMs: number;
  windowMs: number;
  /** Whether the window marks matched the profile's clock (else the whole profile is used). */
  windowed: boolean;
  top: Frame[];
  groups: { group: string; selfPct: number }[];
}

/** `node_modules/zod/v4/core/schemas.js` -> `zod`; repository files -> their folder; Node's own -> `node`. */
function groupOf(url: string, functionName: string, root: string): string {
  if (!url) {
    if (functionName === "(garbage collector)") return "GC";
    if (functionName === "(program)") return "V8/native (program)";
    if (functionName === "(idle)") return "idle";
    return "native";
  }
  if (url.startsWith("node:")) return "node internals";
  const path = url.replace(/^file:\/\//, "");
  const nm = path.lastIndexOf(`${sep}node_modules${sep}`);
  if (nm !== -1) {
    const rest = path.slice(nm + "/node_modules/".length).split(sep);
    return rest[0].startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (path.startsWith(root)) return path.slice(root.length + 1).split(sep)[0] + "/";
  return "other";
}

function displayUrl(url: string, root: string): string {
  const path = url.replace(/^file:\/\//, "");
  const nm = path.lastIndexOf(`${sep}node_modules${sep}`);
  if (nm !== -1) return path.slice(nm + 1);
  if (path.startsWith(root)) return path.slice(root.length + 1);
  return path.startsWith("/") ? path.split(sep).slice(-2).join("/") : path;
}

/**
 * Summarises samples between `fromUs` and `toUs` (the monotonic clock in microseconds, which is
 * the clock V8 stamps samples with); the whole profile when the marks do not fall inside it.
 */
export function summarizeProfile(
  file: string,
  root: string,
  window?: { fromUs: number; toUs: number },
  topN = 15,
): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const windowed =
    !!window && window.fromUs >= profile.startTime && window.toUs <= profile.endTime + 1_000_000;
  const counts = new Map<number, number>();
  let t = profile.startTime;
  let windowUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    if (windowed && (t < window!.fromUs || t > window!.toUs)) continue;
    windowUs += delta;
    counts.set(profile.samples[i], (counts.get(profile.samples[i]) ?? 0) + delta);
  }
  const frames = new Map<string, { group: string; us: number }>();
  const groups = new Map<string, number>();
  let busyUs = 0;
  for (const [id, us] of counts) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const group = groupOf(url, functionName, root);
    if (group === "idle") continue;
    busyUs += us;
    const name = `${functionName || "(anonymous)"}${url ? ` ${displayUrl(url, root)}:${lineNumber + 1}` : ""}`;
    const entry = frames.get(name) ?? { group, us: 0 };
    entry.us += us;
    frames.set(name, entry);
    groups.set(group, (groups.get(group) ?? 0) + us);
  }
  const pct = (us: number) => (busyUs > 0 ? Math.round((1000 * us) / busyUs) / 10 : 0);
  return {
    busyMs: Math.round(busyUs / 1000),
    windowMs: Math.round(windowUs / 1000),
    windowed,
    top: [...frames.entries()]
      .sort((a, b) => b[1].us - a[1].us)
      .slice(0, topN)
      .map(([frame, { group, us }]) => ({ frame, group, selfPct: pct(us), selfMs: Math.round(us / 1000) })),
    groups: [...groups.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([group, us]) => ({ group, selfPct: pct(us) })),
  };
}
