import { readdirSync, readFileSync } from "node:fs";

/**
 * True while a process with this pid exists (signal 0 probes without sending anything; EPERM
 * means it exists but belongs to another user).
 */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Pids of processes whose command line mentions any of `needles`, e.g. the session profile
 * folders (Linux: /proc; elsewhere, or with no needles, none).
 */
export function processesMentioning(needles: string[]): number[] {
  if (process.platform !== "linux" || needles.length === 0) return [];
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (needles.some((needle) => cmdline.includes(needle))) found.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}
