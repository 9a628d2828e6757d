/**
 * The report of a run, from the phases' results: a text table for stdout, docs/benchmarks.md,
 * and bench/results.json. Each missed target gets a line on what limits it.
 */
import { execFileSync } from "node:child_process";
import { arch, cpus, loadavg, platform, release, totalmem } from "node:os";
import { bytes, markdownTable, median, ms, round, textTable, type Cell } from "./format";
import type { Aggregate } from "./load";
import type { ColdStart, ColdStartResult, ModuleLoad } from "./phases/cold-start";
import type { HeapResult } from "./phases/heap";
import type { MemoryResult } from "./phases/memory";
import type { LayerSize, PackageResult } from "./phases/packages";
import type { PieceCost } from "./phases/pieces";
import type { Profiles } from "./phases/profiles";
import type { RoundTrips } from "./phases/round-trips";
import type { HandoverResult } from "./phases/handover";
import type { ThroughputResult } from "./phases/throughput";
import { ROOT, SETTINGS } from "./settings";
import { TARGETS, type TargetCheck } from "./verdicts";

export type Machine = Record<string, string | number>;

/** Everything a run reports. */
export interface ReportInput {
  machine: Machine;
  commit: string;
  /** The throughput table's rows. */
  results: Aggregate[];
  ratios: ThroughputResult["ratios"];
  roundTrips: RoundTrips[];
  coldStarts: ColdStart[];
  /** The cold-start floor (no npm module), run in the same rounds. */
  coldFloor: ColdStartResult["floor"];
  /** Today's package: the commit the cold starts are set against, or why it was not measured. */
  baseline: ColdStartResult["baseline"];
  moduleLoads: ModuleLoad[];
  packages: PackageResult[];
  layer: LayerSize;
  memory: MemoryResult;
  heap: HeapResult[];
  handover: HandoverResult;
  /** What the stack and floor A paused for in their open-loop runs. */
  pauses: ThroughputResult["pauses"];
  /** Each open-loop run's p99 over its p50. */
  tailRatios: ThroughputResult["tailRatios"];
  checks: TargetCheck[];
  profiles: Profiles;
  pieces: PieceCost[];
  /** The connection count of the ratios and verdicts. */
  c: number;
  releasesReused: number;
  serializationErrors: { function: string; error: string }[];
  elapsedS: number;
}

/** The machine the run measured on, with its load average before (`loadAtStart`) and now. */
export function describeMachine(loadAtStart: number[], redisVersion: string): Machine {
  const cpu = cpus();
  return {
    cpuModel: cpu[0]?.model.trim() ?? "unknown",
    cores: cpu.length,
    memoryGiB: round(totalmem() / 1024 ** 3, 1),
    node: process.version,
    os: `${platform()} ${release()} ${arch()}`,
    redis: redisVersion,
    loadAverageBefore: loadAtStart.join(" "),
    loadAverageAfter: loadavg()
      .map((x) => round(x, 2))
      .join(" "),
  };
}

/** The checked-out commit, short, or "unknown" outside a git checkout. */
export function currentCommit(): string {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT }).toString().trim();
  } catch {
    return "unknown";
  }
}

/** bench/results.json: the settings and targets, then every figure the report shows. */
export function resultsJson(input: ReportInput): Record<string, unknown> {
  return {
    generatedAt: new Date().toISOString(),
    commit: input.commit,
    machine: input.machine,
    settings: SETTINGS,
    targets: TARGETS,
    checks: input.checks,
    throughput: input.results,
    ratios: input.ratios,
    roundTrips: input.roundTrips,
    coldStart: input.coldStarts,
    coldStartFloor: input.coldFloor,
    coldStartBaseline: input.baseline,
    moduleLoads: input.moduleLoads,
    packageSize: input.packages.map((p) => ({
      function: p.function,
      uploadBytes: p.upload.totalBytes,
      uploadZipBytes: p.upload.zipBytes,
      codeBytes: p.upload.codeBytes,
      requiredOnlyBytes: p.requiredOnly.totalBytes,
      packages: p.upload.packages.map((x) => ({ name: x.name, bytes: x.bytes, zipBytes: x.zipBytes })),
    })),
    layer: input.layer,
    memory: input.memory,
    heap: input.heap,
    handover: input.handover,
    pauses: input.pauses,
    tailRatios: input.tailRatios,
    profiles: input.profiles,
    pieces: input.pieces,
    releasesReused: input.releasesReused,
    serializationErrors: input.serializationErrors,
    elapsedS: input.elapsedS,
  };
}

/** The report as text (stdout) and as Markdown (docs/benchmarks.md). */
export function renderReport(input: ReportInput): { text: string; markdown: string } {
  const { results, c } = input;
  const row = (key: string) => results.find((r) => r.target === key && r.connections === c)!;
  const throughputHeaders = [
    "target",
    "conns",
    "req/s",
    "p50",
    "p99",
    "vs floor A",
    "vs floor B",
    "CPU/req server",
    "CPU/req redis",
    "non-2xx/errors",
  ];
  const throughputRows: Cell[][] = results.map((r) => [
    r.label,
    r.connections,
    r.rps,
    ms(r.p50),
    ms(r.p99),
    r.vsFloorA === undefined ? "-" : `${r.vsFloorA.toFixed(2)}x`,
    r.vsFloorB === undefined ? "-" : `${r.vsFloorB.toFixed(2)}x`,
    r.serverCpuUsPerReq === undefined ? "-" : `${r.serverCpuUsPerReq} us`,
    r.redisCpuUsPerReq === undefined ? "-" : `${r.redisCpuUsPerReq} us`,
    `${r.non2xx}/${r.errors}`,
  ]);
  const rtHeaders = [
    "route",
    "round trips/request",
    "commands sent/request",
    "commands sent",
    "commands inside scripts/request",
  ];
  const rtRows: Cell[][] = input.roundTrips.map((r) => [
    r.route,
    r.readsPerRequest,
    r.clientCommandsPerRequest,
    Object.entries(r.commands)
      .map(([name, n]) => `${name} x${n}`)
      .join(", "),
    r.scriptedCommandsPerRequest,
  ]);
  const handoverHeaders = ["measure", "value"];
  const h = input.handover;
  const handoverRows: Cell[][] = [
    ["handovers", h.rounds],
    ["release → waiter's 201, p50", ms(h.handoverP50Ms)],
    ["release → waiter's 201, p99", ms(h.handoverP99Ms)],
    ["the release request alone, p50", ms(h.releaseP50Ms)],
    [
      `Redis commands sent per waiter per second (${h.idleWaiters} waiting ${h.idleSeconds} s, nothing freeing)`,
      h.commandsPerWaiterPerSecond,
    ],
    ["… and run inside their scripts, per waiter per second", h.scriptedCommandsPerWaiterPerSecond],
  ];
  const tailHeaders = [
    "server, offered load",
    "p50",
    "p99",
    "p99/p50",
    "p99/p50 of each run (median)",
    "scavenges",
    "scavenge mean / max",
    "mark-compacts (max)",
    "1 ms timer fired after: p99 / max",
  ];
  const tailRows: Cell[][] = (
    [
      ["createOpenLoop", input.pauses.create, input.tailRatios.create],
      ["floorAOpenLoop", input.pauses.floorA, input.tailRatios.floorA],
    ] as const
  ).flatMap(([key, p, ratios]) => {
    const r = input.results.find((x) => x.target === key);
    if (!r) return [];
    return [
      [
        r.label,
        ms(r.p50),
        ms(r.p99),
        r.p50 > 0 ? `${round(r.p99 / r.p50, 1)}x` : "-",
        `${ratios.map((x) => `${x}x`).join(", ")} (${round(median(ratios), 1)}x)`,
        p.scavenges.count,
        `${ms(p.scavenges.meanMs)} / ${ms(p.scavenges.maxMs)}`,
        `${p.markCompacts.count} (${ms(p.markCompacts.maxMs)})`,
        `${ms(p.timerMs.p99)} / ${ms(p.timerMs.max)}`,
      ],
    ];
  });
  const baseline = input.baseline.commit;
  const coldHeaders = [
    "function",
    "median",
    "p90",
    "load",
    "first call",
    "process start to answer",
    `today's package (${baseline})`,
    "vs today",
    "vs floor",
    "status (today's)",
    "package (unzipped)",
    "zip",
  ];
  const coldRows: Cell[][] = [
    ...input.coldStarts.map((cs): Cell[] => {
      const pkg = input.packages.find((p) => p.function === cs.function);
      return [
        cs.function,
        ms(cs.medianMs),
        ms(cs.p90Ms),
        ms(cs.medianLoadMs),
        ms(cs.medianFirstCallMs),
        ms(cs.medianSinceProcessStartMs),
        cs.today ? ms(cs.today.medianMs) : "-",
        cs.vsToday === undefined ? "-" : `${cs.vsToday.toFixed(2)}x`,
        `${cs.vsFloor.toFixed(2)}x`,
        `${cs.statusCodes.join("/")}` + (cs.today ? ` (${cs.today.statusCodes.join("/")})` : ""),
        pkg ? bytes(pkg.upload.totalBytes) : "-",
        pkg ? bytes(pkg.upload.zipBytes) : "-",
      ];
    }),
    [
      "floor (no npm module, one HSET)",
      ms(input.coldFloor.medianMs),
      ms(input.coldFloor.p90Ms),
      ms(input.coldFloor.medianLoadMs),
      ms(input.coldFloor.medianFirstCallMs),
      ms(input.coldFloor.medianSinceProcessStartMs),
      "-",
      "-",
      "1.00x",
      input.coldFloor.statusCodes.join("/"),
      "-",
      "-",
    ],
  ];
  const coldNote =
    `Median of ${SETTINGS.coldRuns} rounds; each round starts, one fresh \`node\` process each, the floor and ` +
    `every function twice: as deployed (its \`__index.js\` alone, npm packages from the dependency layer and ` +
    `the runtime's SDK clients on NODE_PATH, as Lambda's /opt/nodejs/node_modules) and as today's package ` +
    `(the same function serialized at ${baseline}, before the layer, beside node_modules). "vs": median over ` +
    `rounds of the run's total over the same round's run.` +
    (input.baseline.notMeasured ? ` Today's package not measured: ${input.baseline.notMeasured}.` : "");
  const layerRows: Cell[][] = input.layer.files
    .filter((f) => f.path.endsWith(".js"))
    .map((f) => [f.path.replace(/^nodejs\/node_modules\//, ""), bytes(f.bytes), bytes(f.zipBytes)]);
  layerRows.push(["(all files)", bytes(input.layer.totalBytes), bytes(input.layer.zipBytes)]);
  const layerHeaders = ["layer file", "unzipped", "zip"];
  const upload = input.packages[0]?.upload;
  const pkgHeaders = ["package", "unzipped", "zip", "files", "share"];
  const pkgRows: Cell[][] = upload
    ? [
        [
          "(generated code, create-session)",
          bytes(upload.codeBytes),
          "-",
          1,
          `${round((100 * upload.codeBytes) / upload.totalBytes, 1)}%`,
        ],
        ...upload.packages.map((p) => [
          p.name,
          bytes(p.bytes),
          bytes(p.zipBytes),
          p.files,
          `${round((100 * p.bytes) / upload.totalBytes, 1)}%`,
        ]),
      ]
    : [];
  const moduleRows: Cell[][] = input.moduleLoads.map((m) => [m.module, m.from, ms(m.medianMs)]);
  const m = input.memory;
  const memHeaders = ["what", "bytes", "detail"];
  const memRows: Cell[][] = [
    [
      "session record (RUNNING, typical body)",
      m.recordBytes,
      `${m.recordFields} fields, ${m.recordEncoding}`,
    ],
    ["session record after release", m.releasedRecordBytes ?? "-", ""],
    [
      "index entries, small project",
      m.indexSmallProject.bytesPerSession,
      `${m.indexSmallProject.entries} sessions, ${m.indexSmallProject.encodings}`,
    ],
    [
      "index entries, large project",
      m.indexLargeProject.bytesPerSession,
      `${m.indexLargeProject.entries} sessions, ${m.indexLargeProject.encodings}`,
    ],
    ["per session, small project", m.perSessionSmallProject, "record + active + sessions entries"],
    ["per session, large project", m.perSessionLargeProject, "record + active + sessions entries"],
    [
      "used_memory delta per seeded session",
      m.usedMemoryPerSeededSession,
      "all-in: keyspace and expiry entries, allocator",
    ],
  ];
  const heapHeaders = [
    "function",
    "requests",
    "heap after warm-up",
    "heap after each 2,500",
    "growth",
    "statuses",
  ];
  const heapRows: Cell[][] = input.heap.map((h) => [
    h.function,
    h.requests,
    bytes(h.heapAfterWarmup),
    h.heapCheckpoints.map(bytes).join(" / "),
    `${h.growthBytes >= 0 ? "+" : "-"}${bytes(Math.abs(h.growthBytes))}`,
    Object.entries(h.statuses)
      .map(([s, n]) => `${s} x${n}`)
      .join(", "),
  ]);
  const checkHeaders = ["target", "wanted", "measured", "met"];
  const checkRows: Cell[][] = input.checks.map((ch) => [
    ch.name,
    ch.target,
    ch.measured,
    ch.unmeasured ? "not measured" : ch.met ? "yes" : "NO",
  ]);
  const profileBlocks = Object.entries(input.profiles).map(([key, p]) => ({
    key,
    summary: p,
    headers: ["self %", "self ms", "frame", "package"],
    rows: p.top.map((f) => [`${f.selfPct}%`, f.selfMs, f.frame, f.group]) as Cell[][],
    groups: p.groups
      .slice(0, 10)
      .map((g) => `${g.group} ${g.selfPct}%`)
      .join(", "),
  }));
  const machineLine =
    `${input.machine.cpuModel}, ${input.machine.cores} cores, ${input.machine.memoryGiB} GiB, ` +
    `Node ${input.machine.node}, Redis ${input.machine.redis}, ${input.machine.os}; ` +
    `load average ${input.machine.loadAverageBefore} before the run, ${input.machine.loadAverageAfter} after`;
  const note =
    `Each throughput row: ${SETTINGS.rounds} interleaved runs of ${SETTINGS.durationS} s (req/s is their median; p50/p99 over all ` +
    `2xx responses). Load generator, servers and Redis share the machine's ${input.machine.cores} cores. CPU/req: CPU time ` +
    `of the server process and of redis-server per answered request. "vs floor": median over rounds of the ` +
    `run's req/s over the same round's floor run. The "offered" row sends creates at evenly spaced times at half the ` +
    `closed-loop rate (open loop, latency from when each was due, up to 32 sockets): at a fixed ${SETTINGS.connections[SETTINGS.connections.length - 1]} busy connections latency is ` +
    `connections / throughput (Little's law), not the service time; the open-loop row's p99 against its own p50 shows the stalls a client below capacity meets.`;
  const failed = input.checks.filter((ch) => !ch.met && !ch.unmeasured);
  const limits = explainMisses(input, failed);
  const pieceRows: Cell[][] = input.pieces.map((p) => [p.piece, `${p.cpuUs} us`]);

  const text = [
    "",
    `WallCrawler API benchmarks (commit ${input.commit}): ${machineLine}`,
    note,
    "",
    textTable(throughputHeaders, throughputRows),
    "",
    `Ratios at ${c} connections: create/floor A ${row("create").vsFloorA}x, ` +
      `create/floor B ${row("create").vsFloorB}x, retrieve/floor A ${row("retrieve").vsFloorA}x` +
      (input.releasesReused > 0
        ? ` (release runs re-released ${input.releasesReused} sessions: pool ran out)`
        : ""),
    "",
    "Tail at half load (open loop), and what each server paused for meanwhile:",
    textTable(tailHeaders, tailRows),
    "",
    "Redis round trips per request (MONITOR):",
    textTable(rtHeaders, rtRows),
    "",
    `Cold start (load = require of the serialized package, first call = its first answer). ${coldNote}`,
    textTable(coldHeaders, coldRows),
    "",
    "Package contents (create-session's upload):",
    textTable(pkgHeaders, pkgRows),
    "",
    "Dependency layer (one bundled file per package):",
    textTable(layerHeaders, layerRows),
    "",
    "require() of each npm module alone, as deployed (layer or runtime), fresh process (median of 5):",
    textTable(["module", "from", "require"], moduleRows),
    "",
    "Redis memory (MEMORY USAGE, SAMPLES 0):",
    textTable(memHeaders, memRows),
    "",
    "Handler heap (serialized package, --expose-gc, gc before each reading):",
    textTable(heapHeaders, heapRows),
    "",
    "Waiting for a slot (Prefer: wait, a project limited to one live session):",
    textTable(handoverHeaders, handoverRows),
    "",
    ...profileBlocks.flatMap((b) => [
      `CPU profile of the stack under ${b.key} at ${c} connections (${b.summary.busyMs} ms busy of ${b.summary.windowMs} ms sampled${b.summary.windowed ? "" : ", whole profile"}):`,
      textTable(b.headers, b.rows),
      `by package: ${b.groups}`,
      "",
    ]),
    ...input.serializationErrors.map((e) => `Cannot serialize ${e.function}:\n${e.error}\n`),
    "CPU per piece of a request (in-process, sequential):",
    textTable(["piece", "CPU"], pieceRows),
    "",
    "Targets:",
    textTable(checkHeaders, checkRows),
    "",
    failed.length ? `What limits the missed targets:\n${limits.join("\n")}` : "All targets met.",
    `(${input.elapsedS} s)`,
  ].join("\n");

  const markdown = [
    "# Benchmarks",
    "",
    "Generated by `npm run bench` (bench/run.ts); the raw figures are in `bench/results.json`.",
    "",
    `**Machine:** ${machineLine}. Commit \`${input.commit}\`.`,
    "",
    "## Throughput and latency",
    "",
    "The local stack (the Lambda handlers behind a node:http adapter, one process) against two",
    "floors, each a bare node:http server in its own process that returns a fixed JSON body:",
    "floor A does one `HSET` of a session-sized record per request, floor B runs the create",
    "path's own Lua script with the same keys and arguments. All on loopback, driven by autocannon.",
    note,
    "",
    markdownTable(throughputHeaders, throughputRows),
    "",
    "## Tail at half load",
    "",
    `Create at half its closed-loop rate, then floor A at the same offered load from the same`,
    `generator (open loop, latency from when each request was due), in ${SETTINGS.rounds} rounds that alternate`,
    "which goes first; p99/p50 is over all runs, then per run with its median (the verdict's figure).",
    "Meanwhile each server process",
    "counts its garbage collections (perf_hooks) and how late a 1 ms timer fires on its event loop",
    "(monitorEventLoopDelay): a pause inside the server shows there, a wait for a core or in the",
    "generator does not. Floor A's own ratio is what the generator and the machine's other work",
    "add to any server.",
    "",
    markdownTable(tailHeaders, tailRows),
    "",
    "## Redis round trips",
    "",
    markdownTable(rtHeaders, rtRows),
    "",
    "## Cold start and package size",
    "",
    "Each cold start is a fresh `node` process requiring the package that",
    "`pulumi.runtime.serializeFunction(factory, {isFactoryFunction: true})` generates (what",
    "`CallbackFunction` uploads) and answering one request with Redis and local secrets.",
    coldNote,
    "The floor loads no npm module: it opens a raw socket to Redis, sends one `HSET` and answers.",
    "",
    markdownTable(coldHeaders, coldRows),
    "",
    "A function's upload is the generated code plus the node_modules `computeCodePaths` still lists",
    "once `@pulumi/*`, the packages the Lambda runtime ships and the packages the dependency layer",
    "holds are left out: with the layer, `__index.js` alone. Zip sizes are deflate estimates",
    "(each file, plus about 100 bytes of headers).",
    "",
    markdownTable(pkgHeaders, pkgRows),
    "",
    "The dependency layer (infra/layer.ts): each runtime npm dependency bundled by esbuild into one",
    "minified file at the path the generated code requires.",
    "",
    markdownTable(layerHeaders, layerRows),
    "",
    "`require()` of each npm module alone in a fresh process, from where Lambda finds it (the layer, or",
    "the runtime's own SDK):",
    "",
    markdownTable(["module", "from", "require"], moduleRows),
    "",
    "## Waiting for a slot",
    "",
    "A project limited to one live session; each round queues one create with `Prefer: wait=20`,",
    "then releases the live session through the API: the handover is the time from sending the",
    "release to the waiter's 201. The idle cost is the Redis commands waiters send (and their",
    "scripts run) while nothing frees, from MONITOR, against the same window without waiters.",
    "",
    markdownTable(handoverHeaders, handoverRows),
    "",
    "## Memory",
    "",
    markdownTable(memHeaders, memRows),
    "",
    markdownTable(heapHeaders, heapRows),
    "",
    ...profileBlocks.flatMap((b) => [
      `## CPU profile: ${b.key} at ${c} connections`,
      "",
      `\`node --cpu-prof\` of the stack process, ${b.summary.busyMs} ms busy in the measured window. By package: ${b.groups}. ` +
        "V8 samples wall time: a socket write that wakes Redis or the generator on a busy machine counts " +
        "its wait for a core as the write's own time, so the native write frames overstate CPU.",
      "",
      markdownTable(b.headers, b.rows),
      "",
    ]),
    ...input.serializationErrors.flatMap((e) => [
      `## ${e.function} cannot be serialized`,
      "",
      "```",
      e.error,
      "```",
      "",
    ]),
    "## CPU per piece of a request",
    "",
    "Measured in-process with the library's own functions, sequentially.",
    "",
    markdownTable(["piece", "CPU"], pieceRows),
    "",
    "## Targets",
    "",
    markdownTable(checkHeaders, checkRows),
    "",
    ...(failed.length ? ["## What limits the missed targets", "", ...limits, ""] : []),
  ].join("\n");
  return { text, markdown };
}

/** One bullet per missed target: the measured cause and what would move it. */
function explainMisses(input: ReportInput, failed: TargetCheck[]): string[] {
  const { c } = input;
  const row = (key: string) => input.results.find((r) => r.target === key && r.connections === c)!;
  const piece = (prefix: string) => input.pieces.find((p) => p.piece.startsWith(prefix))?.cpuUs ?? NaN;
  const mint = piece("mint");
  const groups = (key: string) =>
    (input.profiles[key]?.groups ?? [])
      .slice(0, 6)
      .map((g) => `${g.group} ${g.selfPct}%`)
      .join(", ");
  const lines: string[] = [];
  const create = row("create");
  const floorA = row("floorA");
  const floorB = row("floorB");
  const retrieve = row("retrieve");
  const open = input.results.find((r) => r.target === "createOpenLoop");
  if (failed.some((f) => f.name.startsWith("create vs"))) {
    lines.push(
      `- create vs the floors: the stack spends ${create.serverCpuUsPerReq} us of CPU per create against ` +
        `${floorA.serverCpuUsPerReq} us (floor A) and ${floorB.serverCpuUsPerReq} us (floor B), while Redis ` +
        `spends ${create.redisCpuUsPerReq} us vs ${floorB.redisCpuUsPerReq} us for the same script: the limit is ` +
        `the Node side, on a machine whose ${String(input.machine.cores)} cores also run Redis and the load ` +
        `generator. Profile by package: ${groups("create")}. Minting the token alone costs ${mint} us ` +
        `(${round((100 * mint) / (create.serverCpuUsPerReq ?? NaN), 0)}% of create's CPU). What would move ` +
        `it: the token is already minted with node:crypto (jose's WebCrypto path cost about 300 us); what ` +
        `remains is spread thin: response and socket writes, the local HTTP adapter that builds each ` +
        `payload-2.0 event (absent in Lambda), JSON body parsing and validation, the per-create log line ` +
        `and ioredis's command objects. Moving it further means fewer layers per request (e.g. a leaner ` +
        `adapter, no log line per create) rather than one hot spot.`,
    );
  }
  const floorOpen = input.results.find((r) => r.target === "floorAOpenLoop");
  if (failed.some((f) => f.name.startsWith("create open-loop")) && open && open.rps > 0) {
    const p = input.pauses.create;
    lines.push(
      `- create open-loop tail: at ${open.label.replace("create, ", "")} (half the closed-loop rate) p50 ` +
        `is ${round(open.p50, 2)} ms and p99 ${round(open.p99, 1)} ms over all runs; per run, p99/p50 has a ` +
        `median of ${round(median(input.tailRatios.create), 1)}x. ` +
        (floorOpen && floorOpen.rps > 0
          ? `Floor A, offered the same load by the same generator, has p50 ${round(floorOpen.p50, 2)} ms and ` +
            `p99 ${round(floorOpen.p99, 1)} ms (a median of ${round(median(input.tailRatios.floorA), 1)}x per run): ` +
            `that much comes from the generator and the machine's other work whatever the server. `
          : "") +
        `Inside the stack over the run: ${p.scavenges.count} scavenges of ${p.scavenges.meanMs} ms on average ` +
        `(longest ${p.scavenges.maxMs} ms), ${p.markCompacts.count} mark-compacts (longest ` +
        `${p.markCompacts.maxMs} ms), and a 1 ms timer fired after ${p.timerMs.p99} ms at p99 (${p.timerMs.max} ms ` +
        `at most). What would move it: less CPU and allocation per create (the stack's CPU per request ` +
        `sets how long a burst queues), and fewer native objects per request for each scavenge to finalize.`,
    );
  }
  if (failed.some((f) => f.name.startsWith("retrieve vs"))) {
    lines.push(
      `- retrieve vs floor A: ${retrieve.serverCpuUsPerReq} us of stack CPU per retrieve vs ` +
        `${floorA.serverCpuUsPerReq} us for floor A. A running session's retrieve mints a fresh connectUrl ` +
        `token (${mint} us, ${round((100 * mint) / (retrieve.serverCpuUsPerReq ?? NaN), 0)}% of it)` +
        (input.profiles.retrieve ? `; profile by package: ${groups("retrieve")}` : "") +
        `. What would move it: reusing a connect token minted for the same session while it has most ` +
        `of its life left, and the thinner request path described for create.`,
    );
  }
  const createCold = input.coldStarts.find((cs) => cs.function === "create-session");
  if (failed.some((f) => f.name.startsWith("cold start")) && createCold) {
    lines.push(
      `- cold start: create-session takes ${createCold.medianMs} ms with the layer (today's package: ` +
        `${createCold.today?.medianMs ?? "-"} ms; the floor: ${input.coldFloor.medianMs} ms), of which ` +
        `${createCold.medianLoadMs} ms is loading the package and ${createCold.medianFirstCallMs} ms the ` +
        `first answer. Each npm module alone: ` +
        input.moduleLoads.map((m) => `${m.module} ${m.medianMs} ms`).join(", ") +
        `. What would move it: load less at init (smaller bundles, lazy requires of what the first ` +
        `request does not use) and a cheaper first call.`,
    );
  }
  if (failed.some((f) => f.name.startsWith("package size"))) {
    const pkg = input.packages.reduce<PackageResult | undefined>(
      (a, b) => (!a || b.upload.zipBytes > a.upload.zipBytes ? b : a),
      undefined,
    );
    if (pkg) {
      const top = pkg.upload.packages[0];
      lines.push(
        `- package size: ${pkg.function}'s upload is ${bytes(pkg.upload.zipBytes)} zipped, ` +
          `${bytes(pkg.upload.codeBytes)} of it generated code` +
          (top
            ? `; ${top.name} (${bytes(top.zipBytes)} zipped) is in it although the layer could hold it`
            : "") +
          `. What would move it: leave what the layer holds out of the package, and less code captured ` +
          `by each function's closure.`,
      );
    }
  }
  if (failed.some((f) => f.name.startsWith("layer size"))) {
    const top = input.layer.files[0];
    lines.push(
      `- layer size: ${bytes(input.layer.totalBytes)} unzipped; the largest file is ${top?.path ?? "-"} ` +
        `(${bytes(top?.bytes ?? 0)}). What would move it: smaller builds of the largest packages ` +
        `(unused locales, a lighter entry point).`,
    );
  }
  for (const f of failed) {
    if (!lines.some((line) => line.startsWith(`- ${f.name.split(" ")[0]}`))) {
      lines.push(`- ${f.name}: ${f.measured} (wanted ${f.target})`);
    }
  }
  return lines;
}
