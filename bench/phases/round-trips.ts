/**
 * Redis round trips per request: MONITOR tells the commands the stack sends from those run inside
 * its scripts, and Redis's count of socket reads tells how many round trips they took.
 */
import { monitorCommands } from "../monitor";
import { round } from "../format";
import { apiRequest } from "../load";
import type { Phase } from "../phase";
import { log, SETTINGS, sleep } from "../settings";
import { TARGETS } from "../verdicts";
import { createBody, PROJECTS } from "../workload";

export interface RoundTrips {
  route: string;
  clientCommandsPerRequest: number;
  readsPerRequest: number;
  scriptedCommandsPerRequest: number;
  commands: Record<string, number>;
}

interface Tally {
  requests: number;
  client: number;
  scripted: number;
  reads: number;
  commands: Record<string, number>;
}

/** The routes whose round trips must be one. */
const ONE_ROUND_TRIP = ["create", "retrieve", "release"];

export const roundTripPhase = {
  async run({ admin, apiKeys, listIds, redisUrl, releases, stack }) {
    log("counting Redis round trips with MONITOR");
    /** Redis's count of socket reads: a pipeline arrives in one read, so this counts round trips. */
    const readsProcessed = async () =>
      Number(/total_reads_processed:(\d+)/.exec(await admin.info("stats"))?.[1]);
    const tallies: Record<string, Tally> = {};
    let counting: Tally | undefined;
    const monitor = await monitorCommands(redisUrl, (name, source) => {
      if (!counting) return;
      if (source === "lua") counting.scripted++;
      else {
        counting.client++;
        counting.commands[name] = (counting.commands[name] ?? 0) + 1;
      }
    });
    const routes: { name: string; send: () => Promise<number> }[] = [
      {
        name: "create",
        send: async () =>
          (await apiRequest(`${stack.url}/v1/sessions`, "POST", apiKeys.create, createBody(PROJECTS.create)))
            .status,
      },
      {
        name: "retrieve",
        send: async () =>
          (await apiRequest(`${stack.url}/v1/sessions/${listIds[0]}`, "GET", apiKeys.list)).status,
      },
      {
        name: "release",
        send: async () => {
          if (releases.remaining <= 0) await releases.seed(100);
          const id = releases.next();
          return (
            await apiRequest(`${stack.url}/v1/sessions/${id}`, "POST", apiKeys.release, {
              status: "REQUEST_RELEASE",
            })
          ).status;
        },
      },
      {
        name: "list",
        send: async () => (await apiRequest(`${stack.url}/v1/sessions`, "GET", apiKeys.list)).status,
      },
    ];
    for (const route of routes) {
      await route.send(); // warm (connections, script cache)
      await sleep(100);
      const tally: Tally = { requests: 0, client: 0, scripted: 0, reads: 0, commands: {} };
      const reads0 = await readsProcessed();
      counting = tally;
      for (let i = 0; i < SETTINGS.roundTripRequests; i++) {
        const status = await route.send();
        if (status < 200 || status >= 300) throw new Error(`${route.name} answered ${status} while counting`);
        tally.requests++;
      }
      await sleep(200);
      counting = undefined;
      // The second INFO's own read is in the delta.
      tally.reads = (await readsProcessed()) - reads0 - 1;
      tallies[route.name] = tally;
    }
    monitor.stop();
    return Object.entries(tallies).map(([name, t]) => ({
      route: name,
      clientCommandsPerRequest: round(t.client / t.requests, 2),
      readsPerRequest: round(t.reads / t.requests, 2),
      scriptedCommandsPerRequest: round(t.scripted / t.requests, 2),
      commands: Object.fromEntries(Object.entries(t.commands).map(([c, n]) => [c, round(n / t.requests, 2)])),
    }));
  },

  verdicts(roundTrips) {
    const roundTripsOf = (route: string) => {
      const r = roundTrips.find((x) => x.route === route);
      // Without pipelining each command is one round trip; Redis's socket-read count confirms it.
      return r ? Math.max(r.clientCommandsPerRequest, r.readsPerRequest) : NaN;
    };
    return ONE_ROUND_TRIP.map((route) => ({
      name: `Redis round trips: ${route}`,
      target: `${TARGETS.roundTrips}`,
      measured: String(roundTripsOf(route)),
      met: roundTripsOf(route) === TARGETS.roundTrips,
    }));
  },
} satisfies Phase<RoundTrips[]>;
