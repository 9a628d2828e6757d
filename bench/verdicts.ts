/**
 * The targets `npm run bench` holds the API to, and the shape of a verdict: each phase turns its
 * figures into rows of the targets table (its `verdicts`), against the values here.
 */
export const TARGETS = {
  createVsFloorA: 0.4,
  createVsFloorB: 0.7,
  createP99Ms: 10,
  retrieveVsFloorA: 0.8,
  roundTrips: 1,
  coldStartMs: 150,
  packageBytes: 3 * 1024 * 1024,
  sessionBytes: 1024,
  heapGrowthBytes: 1024 * 1024,
};

/** One row of the targets table. */
export interface TargetCheck {
  name: string;
  target: string;
  measured: string;
  met: boolean;
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
