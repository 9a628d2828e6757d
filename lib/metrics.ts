import { Metrics as PowertoolsMetrics, MetricUnit } from "@aws-lambda-powertools/metrics";

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
/** Powertools publishes by itself at 100 values of one metric: stay below so each document is ours to write. */
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

/**
 * Metrics in CloudWatch embedded metric format through Powertools for AWS Lambda: EMF lines on
 * stdout that CloudWatch Logs turns into metrics, so no API call and no extra latency. Values are
 * buffered per dimension set and written by `flush()`, one JSON line per set. Disabled (nothing
 * written) when POWERTOOLS_METRICS_DISABLED is true, or it is unset and POWERTOOLS_DEV is true,
 * as Powertools itself does.
 */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const env = options.env ?? process.env;
  const disabled = flag(env.POWERTOOLS_METRICS_DISABLED) ?? flag(env.POWERTOOLS_DEV) ?? false;
  if (disabled) return NO_METRICS;
  const write = options.write ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const emf = new PowertoolsMetrics({
    namespace: env.POWERTOOLS_METRICS_NAMESPACE?.trim() || DEFAULT_METRICS_NAMESPACE,
    serviceName: env.POWERTOOLS_SERVICE_NAME?.trim() || "wallcrawler-api",
  });
  const groups = new Map<string, MetricGroup>();

  const groupFor = (dimensions: MetricDimensions = {}): MetricGroup => {
    const names = Object.keys(dimensions).sort();
    const key = names.map((name) => `${name}=${dimensions[name]}`).join("\n");
    let group = groups.get(key);
    if (!group) {
      group = { dimensions, counts: new Map(), durations: new Map() };
      groups.set(key, group);
    }
    return group;
  };

  const writeGroup = (group: MetricGroup): void => {
    const pending = [...group.durations].map(([name, values]) => ({ name, values: [...values] }));
    let counts = [...group.counts];
    // Several documents only when one metric has more samples than one document holds.
    while (counts.length > 0 || pending.some((entry) => entry.values.length > 0)) {
      for (const [name, value] of Object.entries(group.dimensions)) emf.addDimension(name, value);
      for (const [name, total] of counts) emf.addMetric(name, MetricUnit.Count, total);
      counts = [];
      for (const entry of pending) {
        for (const value of entry.values.splice(0, MAX_VALUES_PER_DOCUMENT))
          emf.addMetric(entry.name, MetricUnit.Milliseconds, value);
      }
      const document = emf.serializeMetrics();
      emf.clearMetrics();
      emf.clearDimensions();
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
          // A metric must never fail a request: an invalid dimension is dropped with Powertools' warning.
          emf.clearMetrics();
          emf.clearDimensions();
        }
      }
    },
  };
}
