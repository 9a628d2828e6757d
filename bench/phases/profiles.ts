/**
 * CPU profiles of the stack under load (`node --cpu-prof`, a fresh stack process per route, the
 * samples of a measured window only): create and list always, retrieve when it missed its target.
 */
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { runLoad, type LoadTarget } from "../load";
import type { Phase } from "../phase";
import { mark, startProcess, stopProcess, TS_NODE } from "../processes";
import { summarizeProfile, type ProfileSummary } from "../profile";
import { BENCH, log, PROFILE_DIR, ROOT, SETTINGS } from "../settings";
import { TARGETS } from "../verdicts";

export type Profiles = Record<string, ProfileSummary>;

/** The routes to profile, given how retrieve fared against floor A at `connections`. */
function routesToProfile(retrieveVsFloorA: number): Set<string> {
  // create is always profiled (the route the floors measure), list too (by far the costliest).
  const routes = new Set<string>(["create", "list"]);
  if (retrieveVsFloorA < TARGETS.retrieveVsFloorA) routes.add("retrieve");
  return routes;
}

/** Profiles at `connections`; `retrieveVsFloorA` is retrieve's ratio measured there. */
export function profilePhase(measured: { connections: number; retrieveVsFloorA: number }): Phase<Profiles> {
  const c = measured.connections;
  return {
    async run({ stackEnv, targets }) {
      const profiles: Profiles = {};
      mkdirSync(PROFILE_DIR, { recursive: true });
      for (const key of routesToProfile(measured.retrieveVsFloorA)) {
        log(`profiling ${key} at ${c} connections (--cpu-prof)`);
        const name = `${key}.cpuprofile`;
        rmSync(join(PROFILE_DIR, name), { force: true });
        const proc = await startProcess("profiled stack", join(BENCH, "stack-process.ts"), [], stackEnv, [
          ...TS_NODE,
          "--cpu-prof",
          `--cpu-prof-dir=${PROFILE_DIR}`,
          `--cpu-prof-name=${name}`,
        ]);
        const target: LoadTarget = { ...targets.find((t) => t.key === key)!, url: proc.url, pid: proc.pid };
        await runLoad(target, c, SETTINGS.warmupS);
        const fromUs = await mark(proc);
        await runLoad(target, c, SETTINGS.profileS);
        const toUs = await mark(proc);
        await stopProcess(proc.child);
        profiles[key] = summarizeProfile(join(PROFILE_DIR, name), ROOT, { fromUs, toUs });
      }
      return profiles;
    },
  };
}
