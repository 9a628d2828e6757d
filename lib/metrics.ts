/** Every metric the API emits: a typo is a compile error, not a new CloudWatch metric. */
export type MetricName =
  | "SessionsCreated"
  | "SessionsRefused"
  | "SessionsEnded"
  | "RateLimited"
  | "QueueWaits"
  | "QueueWaitTime"
  | "CreateLatency"
  | "RedisErrors"
  | "RedisLatency"
  | "SecretsErrors"
  | "SecretsLatency";

/**
 * Dimensions beyond `service`, which every metric has. Each distinct value set is a separate
 * CloudWatch metric (and a separate cost): use `projectId` and nothing per request.
 */
export type MetricDimensions = Readonly<Record<string, string>>;

/** One line of embedded metric format as `flush` writes it (what CloudWatch Logs turns into metrics). */
export interface EmfDocument {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: {
      Namespace: string;
      Dimensions: string[][];
      Metrics: { Name: string; Unit: string }[];
    }[];
  };
  /** The dimension values and each metric's value (or values) by name. */
  [field: string]: unknown;
}

/** The narrow metrics interface the handlers and the store wrappers depend on. */
export interface Metrics {
  /** Adds `value` (default 1) to a count. */
  count(name: MetricName, value?: number, dimensions?: MetricDimensions): void;
  /** Records one duration in milliseconds (each value is a sample: CloudWatch gives percentiles). */
  duration(name: MetricName, ms: number, dimensions?: MetricDimensions): void;
  /** Writes what was recorded since the last flush as EMF lines and forgets it. Once per invocation. */
  flush(): void;
}

/** Metrics that go nowhere (the fallback function, tests that do not look). */
export const NO_METRICS: Metrics = {
  count: () => undefined,
  duration: () => undefined,
  flush: () => undefined,
};

export interface MetricsOptions {
  /** Read for POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_DISABLED, POWERTOOLS_DEV. */
  env?: Record<string, string | undefined>;
  /** Where each EMF document goes (one JSON line); default stdout, which CloudWatch Logs parses as EMF. */
  write?: (line: string) => void;
}

/** Namespace when POWERTOOLS_METRICS_NAMESPACE is unset. */
export const DEFAULT_METRICS_NAMESPACE = "WallCrawler";
/** Samples of one metric in one document: EMF allows 100; Powertools (this format's reference) publishes at 100. */
const MAX_VALUES_PER_DOCUMENT = 99;

interface MetricGroup {
  dimensions: MetricDimensions;
  counts: Map<MetricName, number>;
  durations: Map<MetricName, number[]>;
}

function flag(value: string | undefined): boolean | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  return ["1", "true", "yes", "on", "y"].includes(value.trim().toLowerCase());
}

/** A dimension CloudWatch accepts: a non-empty name and value (what Powertools checks too). */
function validDimension(name: string, value: unknown): value is string {
  return name !== "" && typeof value === "string" && value !== "";
}

/**
 * Metrics in CloudWatch embedded metric format: EMF lines on stdout that CloudWatch Logs turns
 * into metrics, so no API call and no extra latency. Values are buffered per dimension set and
 * written by `flush()`, one JSON line per set, in the document Powertools for AWS Lambda writes
 * (namespace, the `service` dimension first, one `{Name, Unit}` per metric, a single sample as a
 * number and several as an array). The document is built here rather than through Powertools'
 * `Metrics`: the flush runs once per request, and its per-document validation and copies cost
 * about 20 µs and 5 KB of garbage a request (`npm run bench`), which the young-generation GC then
 * pauses for. Disabled (nothing written) when POWERTOOLS_METRICS_DISABLED is true, or it is unset
 * and POWERTOOLS_DEV is true, as Powertools itself does.
 */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const env = options.env ?? process.env;
  const disabled = flag(env.POWERTOOLS_METRICS_DISABLED) ?? flag(env.POWERTOOLS_DEV) ?? false;
  if (disabled) return NO_METRICS;
  const write = options.write ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const namespace = env.POWERTOOLS_METRICS_NAMESPACE?.trim() || DEFAULT_METRICS_NAMESPACE;
  const service = env.POWERTOOLS_SERVICE_NAME?.trim() || "wallcrawler-api";
  const groups = new Map<string, MetricGroup>();

  const groupFor = (dimensions?: MetricDimensions): MetricGroup => {
    let key = "";
    if (dimensions) {
      const names = Object.keys(dimensions);
      if (names.length > 1) names.sort();
      for (const name of names) key += `${name}=${dimensions[name]}\n`;
    }
    let group = groups.get(key);
    if (!group) {
      group = { dimensions: dimensions ?? {}, counts: new Map(), durations: new Map() };
      groups.set(key, group);
    }
    return group;
  };

  const writeGroup = (group: MetricGroup): void => {
    // The service dimension first, then the group's own (an invalid one is dropped with a warning).
    const dimensionValues: Record<string, string> = { service };
    for (const [name, value] of Object.entries(group.dimensions)) {
      if (name === "service") continue;
      if (validDimension(name, value)) dimensionValues[name] = value;
      else
        console.warn(
          `The dimension ${name} doesn't meet the requirements and won't be added. ` +
            "Ensure the dimension name and value are non empty strings",
        );
    }
    const dimensionNames = Object.keys(dimensionValues);
    const pending = [...group.durations].map(([name, values]) => ({ name, values, from: 0 }));
    let counts = [...group.counts];
    // Several documents only when one metric has more samples than one document holds.
    while (counts.length > 0 || pending.some((entry) => entry.from < entry.values.length)) {
      const definitions: { Name: MetricName; Unit: "Count" | "Milliseconds" }[] = [];
      const values: Record<string, number | number[]> = {};
      for (const [name, total] of counts) {
        definitions.push({ Name: name, Unit: "Count" });
        values[name] = total;
      }
      counts = [];
      for (const entry of pending) {
        if (entry.from >= entry.values.length) continue;
        const samples = entry.values.slice(entry.from, entry.from + MAX_VALUES_PER_DOCUMENT);
        entry.from += samples.length;
        definitions.push({ Name: entry.name, Unit: "Milliseconds" });
        values[entry.name] = samples.length === 1 ? samples[0] : samples;
      }
      const document = {
        _aws: {
          Timestamp: Date.now(),
          CloudWatchMetrics: [{ Namespace: namespace, Dimensions: [dimensionNames], Metrics: definitions }],
        },
        ...dimensionValues,
        ...values,
      };
      write(JSON.stringify(document));
    }
  };

  return {
    count(name, value = 1, dimensions) {
      const counts = groupFor(dimensions).counts;
      counts.set(name, (counts.get(name) ?? 0) + value);
    },
    duration(name, ms, dimensions) {
      const durations = groupFor(dimensions).durations;
      const values = durations.get(name);
      // Whole tenths of a millisecond: finer is noise, and shorter lines cost less to ingest.
      const rounded = Math.round(ms * 10) / 10;
      if (values) values.push(rounded);
      else durations.set(name, [rounded]);
    },
    flush() {
      if (groups.size === 0) return;
      const flushing = [...groups.values()];
      groups.clear();
      for (const group of flushing) {
        try {
          writeGroup(group);
        } catch {
          // A metric must never fail a request (a write to a closed stdout, say).
        }
      }
    },
  };
}
