/**
 * The targets `npm run bench` holds the API to, and the shape of a verdict: each phase turns its
 * figures into rows of the targets table (its `verdicts`), against the values here.
 */
export const TARGETS = {
  // Issue 15's targets.
  /** create-session's cold start (load + first call) over today's package's, side by side. */
  coldStartVsToday: 0.6,
  /** A function's upload: the zip of its `__index.js` (the layer's packages are left out). */
  packageZipBytes: 100 * 1024,
  /** The shared-dependencies layer, unzipped (decimal megabyte). */
  layerBytes: 1_000_000,
  /** Open-loop create at half the closed-loop capacity: p99 under this many times its p50. */
  createOpenLoopP99OverP50: 5,
  createVsFloorA: 0.5,
  retrieveVsFloorA: 0.8,
  roundTrips: 1,
  // Earlier ones.
  createVsFloorB: 0.7,
  sessionBytes: 1024,
  heapGrowthBytes: 1024 * 1024,
};

/** One row of the targets table. */
export interface TargetCheck {
  name: string;
  target: string;
  measured: string;
  met: boolean;
  /** Could not be measured in this run (`measured` says why): shown as such, not as a miss. */
  unmeasured?: boolean;
}

/** A function that cannot be serialized fails its own row (and leaves the phases that load it short). */
export function serializationVerdicts(errors: { function: string; error: string }[]): TargetCheck[] {
  return errors.map((e) => ({
    name: `function serializes: ${e.function}`,
    target: "serializeFunction succeeds",
    measured: e.error.split("\n")[0].slice(0, 120),
    met: false,
  }));
}

/** What a row of a phase that loads the serialized functions says when it had none to load. */
export function notMeasured(errors: { function: string }[]): string {
  return errors.length
    ? `not measured: ${errors.map((e) => e.function).join(", ")} cannot be serialized`
    : "not measured";
}
