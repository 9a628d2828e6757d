import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { METRICS_NAMESPACE, SERVICE_NAME } from "./functions";

/**
 * The handlers' own metrics (Powertools Metrics, embedded metric format) in `METRICS_NAMESPACE`,
 * each with the `service` dimension; the session ones may carry `projectId` as well. Counts
 * unless the name ends in Latency or Time (milliseconds).
 */
export const SESSION_METRICS = [
  "SessionsCreated",
  "SessionsRefused",
  "SessionsEnded",
  "RateLimited",
] as const;
export const QUEUE_METRICS = ["QueueWaits", "QueueWaitTime"] as const;
export const LATENCY_METRICS = ["CreateLatency", "QueueWaitTime", "RedisLatency", "SecretsLatency"] as const;
export const DEPENDENCY_METRICS = ["RedisErrors", "RedisLatency", "SecretsErrors", "SecretsLatency"] as const;
export const APP_METRICS = [
  ...SESSION_METRICS,
  ...QUEUE_METRICS,
  "CreateLatency",
  ...DEPENDENCY_METRICS,
] as const;

/**
 * Alarm thresholds. Every alarm compares with `>=`; see docs/operate.md for why each default.
 */
export interface AlarmThresholds {
  /** Lambda `Errors` (crashes, timeouts, out of memory) of one function in 5 minutes. */
  functionErrors: number;
  /** Lambda `Throttles` of one function in 5 minutes. */
  functionThrottles: number;
  /** API Gateway 5xx as a percentage of requests over 5 minutes... */
  api5xxPercent: number;
  /** ...counted only in a 5-minute window with at least this many requests. */
  api5xxMinRequests: number;
  /** API Gateway p99 `Latency` in ms, three 5-minute windows in a row. */
  apiP99LatencyMs: number;
  /** A cache node's `DatabaseMemoryUsagePercentage` (maximum), two 5-minute windows in a row. */
  cacheMemoryPercent: number;
  /** A cache node's `Evictions` in 5 minutes. */
  cacheEvictions: number;
  /** A cache node's `EngineCPUUtilization` (average), three 5-minute windows in a row. */
  cacheCpuPercent: number;
  /** A NAT gateway's `ErrorPortAllocation` in 5 minutes. */
  natPortAllocationErrors: number;
  /** The Proxy target group's `UnHealthyHostCount` (maximum), three 1-minute windows in a row. */
  albUnhealthyHosts: number;
  /** The ALB's own `HTTPCode_ELB_5XX_Count` in 5 minutes. */
  albElb5xx: number;
  /** The Proxy's `HTTPCode_Target_5XX_Count` in 5 minutes. */
  albTarget5xx: number;
}

export const DEFAULT_THRESHOLDS: Readonly<AlarmThresholds> = {
  functionErrors: 1,
  functionThrottles: 1,
  api5xxPercent: 5,
  api5xxMinRequests: 20,
  apiP99LatencyMs: 2000,
  cacheMemoryPercent: 80,
  cacheEvictions: 1,
  cacheCpuPercent: 80,
  natPortAllocationErrors: 1,
  albUnhealthyHosts: 1,
  albElb5xx: 10,
  albTarget5xx: 10,
};

/** The defaults with a stack's overrides; throws naming an unknown key or a bad number. */
export function alarmThresholds(overrides?: Record<string, unknown>): AlarmThresholds {
  const thresholds: AlarmThresholds = { ...DEFAULT_THRESHOLDS };
  for (const [key, value] of Object.entries(overrides ?? {})) {
    if (!(key in DEFAULT_THRESHOLDS)) {
      throw new Error(
        `monitoring: alarms.${key} is not a threshold (${Object.keys(DEFAULT_THRESHOLDS).join(", ")})`,
      );
    }
    const number = typeof value === "string" ? Number(value) : value;
    if (typeof number !== "number" || !Number.isFinite(number) || number < 0) {
      throw new Error(
        `monitoring: alarms.${key} must be a number of 0 or more, got ${JSON.stringify(value)}`,
      );
    }
    if (key.endsWith("Percent") && number > 100) {
      throw new Error(`monitoring: alarms.${key} is a percentage (0 to 100), got ${number}`);
    }
    thresholds[key as keyof AlarmThresholds] = number;
  }
  return thresholds;
}

/** Where alarm notifications go: an SNS subscription. */
export interface AlarmSubscription {
  protocol: "email" | "email-json" | "https" | "sqs" | "lambda" | "sms";
  endpoint: string;
}

const SUBSCRIPTION_PROTOCOLS = ["email", "email-json", "https", "sqs", "lambda", "sms"];

/** Checks subscriptions; throws naming the bad one. Plain `http` is refused: alarms would cross the internet in clear. */
export function checkSubscriptions(subscriptions: readonly AlarmSubscription[]): void {
  subscriptions.forEach((subscription, index) => {
    const where = `monitoring: alarm subscription ${index} (${subscription.protocol} ${subscription.endpoint})`;
    if (!SUBSCRIPTION_PROTOCOLS.includes(subscription.protocol)) {
      throw new Error(`${where}: protocol must be one of ${SUBSCRIPTION_PROTOCOLS.join(", ")}`);
    }
    if (!subscription.endpoint) throw new Error(`${where}: endpoint is required`);
    if (subscription.protocol.startsWith("email") && !/^[^@\s]+@[^@\s]+$/.test(subscription.endpoint)) {
      throw new Error(`${where}: endpoint must be an email address`);
    }
    if (subscription.protocol === "https" && !subscription.endpoint.startsWith("https://")) {
      throw new Error(`${where}: endpoint must be an https:// URL`);
    }
    if (
      (subscription.protocol === "sqs" || subscription.protocol === "lambda") &&
      !subscription.endpoint.startsWith("arn:")
    ) {
      throw new Error(`${where}: endpoint must be an ARN`);
    }
  });
}

/** NAT gateways a network has: none in an existing VPC (we do not own its NAT), else by strategy. */
export function expectedNatGateways(args: {
  existingVpc: boolean;
  strategy?: "None" | "Single" | "OnePerAz";
  availabilityZones?: number;
}): number {
  if (args.existingVpc) return 0;
  const strategy = args.strategy ?? "Single";
  if (strategy === "None") return 0;
  return strategy === "Single" ? 1 : (args.availabilityZones ?? 2);
}

/**
 * An ALB's name from its DNS name (`<name>-<id>.<region>.elb.amazonaws.com`, `internal-` in front
 * for an internal one): what `aws.lb.getLoadBalancer` needs to find its ARN suffix.
 */
export function albNameFromDnsName(dnsName: string): string {
  const label = dnsName.split(".")[0].replace(/^internal-/, "");
  const cut = label.lastIndexOf("-");
  if (cut <= 0) throw new Error(`monitoring: "${dnsName}" is not an ALB DNS name`);
  return label.slice(0, cut);
}

/** The part of an ELB ARN that CloudWatch uses as its dimension value (`app/...`, `targetgroup/...`). */
export function elbArnSuffix(arn: string): string {
  const match = /^arn:aws[a-z-]*:elasticloadbalancing:[^:]*:\d*:(?:loadbalancer\/)?(.+)$/.exec(arn);
  if (!match) throw new Error(`monitoring: "${arn}" is not an Elastic Load Balancing ARN`);
  return match[1];
}

/** One metric as CloudWatch names it. */
export interface MetricRef {
  namespace: string;
  metricName: string;
  dimensions: Record<string, string>;
}

/** One alarm, resolved: what it watches, when it fires, what it tells the operator. */
export interface AlarmSpec {
  /** Short key used in the resource name and the outputs: `fn-create-session-errors`, `api-5xx-rate`. */
  key: string;
  description: string;
  threshold: number;
  periodSeconds: number;
  evaluationPeriods: number;
  treatMissingData: "notBreaching" | "missing" | "breaching";
  /** A single metric and its statistic... */
  metric?: MetricRef & { statistic?: "Sum" | "Maximum" | "Average"; extendedStatistic?: string };
  /** ...or a metric math expression over named metrics (each with Sum). */
  expression?: { expression: string; label: string; metrics: Record<string, MetricRef> };
}

/** What the alarms watch, resolved to plain values. */
export interface WatchedResources {
  /** Short name (for the alarm key) and Lambda function name. */
  functions: { name: string; functionName: string }[];
  apiId: string;
  cacheNodeIds: string[];
  natGatewayIds: string[];
  alb?: { loadBalancer: string; targetGroup: string };
}

const MINUTES_5 = 300;

/** Every alarm of the stack for the given resources and thresholds (pure; unit-tested). */
export function alarmSpecs(watched: WatchedResources, thresholds: AlarmThresholds): AlarmSpec[] {
  const specs: AlarmSpec[] = [];
  const counted = (
    key: string,
    description: string,
    metric: MetricRef,
    threshold: number,
    periodSeconds = MINUTES_5,
    evaluationPeriods = 1,
  ): AlarmSpec => ({
    key,
    description,
    threshold,
    periodSeconds,
    evaluationPeriods,
    // No data points means nothing happened: no errors, no throttles, no evictions.
    treatMissingData: "notBreaching",
    metric: { ...metric, statistic: "Sum" },
  });

  for (const fn of watched.functions) {
    const dimensions = { FunctionName: fn.functionName };
    specs.push(
      counted(
        `fn-${fn.name}-errors`,
        `Function ${fn.name} failed (crash, timeout or out of memory) ${thresholds.functionErrors} or more times in 5 minutes. See docs/operate.md#function-errors.`,
        { namespace: "AWS/Lambda", metricName: "Errors", dimensions },
        thresholds.functionErrors,
      ),
      counted(
        `fn-${fn.name}-throttles`,
        `Function ${fn.name} was throttled ${thresholds.functionThrottles} or more times in 5 minutes: requests were refused for lack of concurrency. See docs/operate.md#function-throttles.`,
        { namespace: "AWS/Lambda", metricName: "Throttles", dimensions },
        thresholds.functionThrottles,
      ),
    );
  }

  const api = { ApiId: watched.apiId };
  specs.push(
    {
      key: "api-5xx-rate",
      description: `${thresholds.api5xxPercent}% or more of API requests answered 5xx over 5 minutes (windows with fewer than ${thresholds.api5xxMinRequests} requests do not count). See docs/operate.md#api-5xx-rate.`,
      threshold: thresholds.api5xxPercent,
      periodSeconds: MINUTES_5,
      evaluationPeriods: 1,
      treatMissingData: "notBreaching",
      expression: {
        // FILL: a window with requests but no 5xx data point is a 0% window, not a missing one.
        expression: `IF(requests >= ${thresholds.api5xxMinRequests}, 100 * FILL(errors, 0) / requests, 0)`,
        label: "5xx % of requests",
        metrics: {
          errors: { namespace: "AWS/ApiGateway", metricName: "5xx", dimensions: api },
          requests: { namespace: "AWS/ApiGateway", metricName: "Count", dimensions: api },
        },
      },
    },
    {
      key: "api-p99-latency",
      description: `API p99 latency was ${thresholds.apiP99LatencyMs} ms or more for 15 minutes. See docs/operate.md#api-p99-latency.`,
      threshold: thresholds.apiP99LatencyMs,
      periodSeconds: MINUTES_5,
      evaluationPeriods: 3,
      treatMissingData: "notBreaching",
      metric: {
        namespace: "AWS/ApiGateway",
        metricName: "Latency",
        dimensions: api,
        extendedStatistic: "p99",
      },
    },
  );

  for (const node of watched.cacheNodeIds) {
    const dimensions = { CacheClusterId: node };
    specs.push(
      {
        key: `cache-${node}-memory`,
        description: `Cache node ${node} uses ${thresholds.cacheMemoryPercent}% or more of its memory (10 minutes). At 100% every write (session create) fails. See docs/operate.md#cache-memory.`,
        threshold: thresholds.cacheMemoryPercent,
        periodSeconds: MINUTES_5,
        evaluationPeriods: 2,
        // A node that stops reporting is not "fine": leave the state to CloudWatch's INSUFFICIENT_DATA.
        treatMissingData: "missing",
        metric: {
          namespace: "AWS/ElastiCache",
          metricName: "DatabaseMemoryUsagePercentage",
          dimensions,
          statistic: "Maximum",
        },
      },
      counted(
        `cache-${node}-evictions`,
        `Cache node ${node} evicted keys: with maxmemory-policy noeviction it never should, so session records are being lost. See docs/operate.md#cache-evictions.`,
        { namespace: "AWS/ElastiCache", metricName: "Evictions", dimensions },
        thresholds.cacheEvictions,
      ),
      {
        key: `cache-${node}-cpu`,
        description: `Cache node ${node}'s engine thread was ${thresholds.cacheCpuPercent}% busy or more for 15 minutes. See docs/operate.md#cache-cpu.`,
        threshold: thresholds.cacheCpuPercent,
        periodSeconds: MINUTES_5,
        evaluationPeriods: 3,
        treatMissingData: "missing",
        metric: {
          namespace: "AWS/ElastiCache",
          metricName: "EngineCPUUtilization",
          dimensions,
          statistic: "Average",
        },
      },
    );
  }

  for (const nat of watched.natGatewayIds) {
    specs.push(
      counted(
        `nat-${nat}-port-allocation`,
        `NAT gateway ${nat} could not allocate a source port (ErrorPortAllocation): the functions' calls to Secrets Manager fail. See docs/operate.md#nat-port-allocation.`,
        { namespace: "AWS/NATGateway", metricName: "ErrorPortAllocation", dimensions: { NatGatewayId: nat } },
        thresholds.natPortAllocationErrors,
      ),
    );
  }

  if (watched.alb) {
    const lb = { LoadBalancer: watched.alb.loadBalancer };
    specs.push(
      {
        key: "alb-unhealthy-hosts",
        description: `${thresholds.albUnhealthyHosts} or more Proxy tasks failed the ALB health check for 3 minutes. See docs/operate.md#alb-unhealthy-hosts.`,
        threshold: thresholds.albUnhealthyHosts,
        periodSeconds: 60,
        evaluationPeriods: 3,
        treatMissingData: "notBreaching",
        metric: {
          namespace: "AWS/ApplicationELB",
          metricName: "UnHealthyHostCount",
          dimensions: { ...lb, TargetGroup: watched.alb.targetGroup },
          statistic: "Maximum",
        },
      },
      counted(
        "alb-elb-5xx",
        `The connect ALB itself answered 5xx ${thresholds.albElb5xx} or more times in 5 minutes (no healthy Proxy, or the Proxy did not answer). See docs/operate.md#alb-5xx.`,
        { namespace: "AWS/ApplicationELB", metricName: "HTTPCode_ELB_5XX_Count", dimensions: lb },
        thresholds.albElb5xx,
      ),
      counted(
        "alb-target-5xx",
        `The Proxy answered 5xx ${thresholds.albTarget5xx} or more times in 5 minutes. See docs/operate.md#alb-5xx.`,
        { namespace: "AWS/ApplicationELB", metricName: "HTTPCode_Target_5XX_Count", dimensions: lb },
        thresholds.albTarget5xx,
      ),
    );
  }
  return specs;
}

type DashboardMetric = (string | Record<string, unknown>)[];

function metricLine(ref: MetricRef, options: Record<string, unknown> = {}): DashboardMetric {
  return [ref.namespace, ref.metricName, ...Object.entries(ref.dimensions).flat(), options];
}

/** A sum across every dimension set a handler metric was emitted with (with or without projectId). */
function appTotal(metricName: string, id: string): DashboardMetric {
  return [
    {
      id,
      label: metricName,
      expression: `SUM(SEARCH('Namespace="${METRICS_NAMESPACE}" MetricName="${metricName}" service="${SERVICE_NAME}"', 'Sum', 300))`,
    },
  ];
}

/**
 * The dashboard: the alarms' signals plus the handlers' session, queue and dependency metrics
 * (pure; unit-tested). Widgets are laid out in a 24-column grid, two per row.
 */
export function dashboardBody(input: WatchedResources & { region: string; alarmArns: string[] }): {
  widgets: Record<string, unknown>[];
} {
  const widgets: Record<string, unknown>[] = [];
  const graph = (title: string, metrics: DashboardMetric[], extra: Record<string, unknown> = {}) => {
    const index = widgets.length;
    widgets.push({
      type: "metric",
      x: (index % 2) * 12,
      y: Math.floor(index / 2) * 6,
      width: 12,
      height: 6,
      properties: {
        title,
        region: input.region,
        view: "timeSeries",
        stat: "Sum",
        period: 300,
        metrics,
        ...extra,
      },
    });
  };
  const app = (metricName: string): MetricRef => ({
    namespace: METRICS_NAMESPACE,
    metricName,
    dimensions: { service: SERVICE_NAME },
  });

  graph(
    "Sessions (all projects)",
    SESSION_METRICS.map((name, i) => appTotal(name, `s${i}`)),
  );
  graph("Sessions created per project", [
    [
      {
        id: "perProject",
        expression: `SEARCH('{${METRICS_NAMESPACE},projectId,service} MetricName="SessionsCreated"', 'Sum', 300)`,
        label: "",
      },
    ],
  ]);
  graph(
    "Create latency and queue (ms, p50/p99)",
    [
      metricLine(app("CreateLatency"), { stat: "p50", label: "CreateLatency p50" }),
      metricLine(app("CreateLatency"), { stat: "p99", label: "CreateLatency p99" }),
      metricLine(app("QueueWaitTime"), { stat: "p99", label: "QueueWaitTime p99" }),
      appTotal("QueueWaits", "queueWaits").map((entry) =>
        typeof entry === "object" ? { ...entry, yAxis: "right" } : entry,
      ),
    ],
    { stat: "p99" },
  );
  graph("Redis and Secrets Manager", [
    appTotal("RedisErrors", "redisErrors"),
    appTotal("SecretsErrors", "secretsErrors"),
    metricLine(app("RedisLatency"), { stat: "p99", label: "RedisLatency p99 (ms)", yAxis: "right" }),
    metricLine(app("SecretsLatency"), { stat: "p99", label: "SecretsLatency p99 (ms)", yAxis: "right" }),
  ]);

  const api = { ApiId: input.apiId };
  graph("API requests and errors", [
    metricLine({ namespace: "AWS/ApiGateway", metricName: "Count", dimensions: api }),
    metricLine({ namespace: "AWS/ApiGateway", metricName: "4xx", dimensions: api }),
    metricLine({ namespace: "AWS/ApiGateway", metricName: "5xx", dimensions: api }),
  ]);
  graph("API latency (ms)", [
    metricLine({ namespace: "AWS/ApiGateway", metricName: "Latency", dimensions: api }, { stat: "p50" }),
    metricLine({ namespace: "AWS/ApiGateway", metricName: "Latency", dimensions: api }, { stat: "p99" }),
    metricLine(
      { namespace: "AWS/ApiGateway", metricName: "IntegrationLatency", dimensions: api },
      { stat: "p99" },
    ),
  ]);

  const perFunction = (metricName: string, options: Record<string, unknown> = {}) =>
    input.functions.map((fn) =>
      metricLine(
        { namespace: "AWS/Lambda", metricName, dimensions: { FunctionName: fn.functionName } },
        { label: fn.name, ...options },
      ),
    );
  graph("Function errors", perFunction("Errors"));
  graph("Function throttles", perFunction("Throttles"));
  graph("Function duration p99 (ms)", perFunction("Duration", { stat: "p99" }));
  graph("Function concurrency (max)", perFunction("ConcurrentExecutions", { stat: "Maximum" }));

  const perNode = (metricName: string, stat: string) =>
    input.cacheNodeIds.map((node) =>
      metricLine(
        { namespace: "AWS/ElastiCache", metricName, dimensions: { CacheClusterId: node } },
        { stat, label: `${node} ${metricName}` },
      ),
    );
  graph("Cache memory and CPU (%)", [
    ...perNode("DatabaseMemoryUsagePercentage", "Maximum"),
    ...perNode("EngineCPUUtilization", "Average"),
  ]);
  graph("Cache evictions and connections", [
    ...perNode("Evictions", "Sum"),
    ...perNode("CurrConnections", "Maximum").map((line) => {
      const options = line[line.length - 1] as Record<string, unknown>;
      return [...line.slice(0, -1), { ...options, yAxis: "right" }];
    }),
  ]);

  if (input.natGatewayIds.length > 0) {
    graph(
      "NAT gateway port allocation errors",
      input.natGatewayIds.map((nat) =>
        metricLine({
          namespace: "AWS/NATGateway",
          metricName: "ErrorPortAllocation",
          dimensions: { NatGatewayId: nat },
        }),
      ),
    );
  }
  if (input.alb) {
    const lb = { LoadBalancer: input.alb.loadBalancer };
    const tg = { ...lb, TargetGroup: input.alb.targetGroup };
    graph("Connect ALB", [
      metricLine(
        { namespace: "AWS/ApplicationELB", metricName: "HealthyHostCount", dimensions: tg },
        { stat: "Minimum" },
      ),
      metricLine(
        { namespace: "AWS/ApplicationELB", metricName: "UnHealthyHostCount", dimensions: tg },
        { stat: "Maximum" },
      ),
      metricLine({ namespace: "AWS/ApplicationELB", metricName: "HTTPCode_ELB_5XX_Count", dimensions: lb }),
      metricLine({
        namespace: "AWS/ApplicationELB",
        metricName: "HTTPCode_Target_5XX_Count",
        dimensions: lb,
      }),
    ]);
  }

  widgets.push({
    type: "alarm",
    x: 0,
    y: Math.ceil(widgets.length / 2) * 6,
    width: 24,
    height: 6,
    properties: { title: "Alarms", alarms: input.alarmArns, sortBy: "stateUpdatedTimestamp" },
  });
  return { widgets };
}

export interface MonitoringArgs {
  /** Every function: short name and Lambda function name. */
  functions: { name: string; functionName: pulumi.Input<string> }[];
  apiId: pulumi.Input<string>;
  /** Each cache node's cache cluster id (see infra/cache.ts `cacheNodeIds`). */
  cacheNodeIds: pulumi.Input<string>[];
  /** One id per NAT gateway of the stack's VPC; empty with an existing VPC or `natGateways: None`. */
  natGatewayIds: pulumi.Input<string>[];
  /** The connect ALB (ARN suffixes, the dimension values); absent with an existing connect host. */
  alb?: { loadBalancerArnSuffix: pulumi.Input<string>; targetGroupArnSuffix: pulumi.Input<string> };
  /** Where alarms are sent; none: the topic only (subscribe later, or read the console). */
  subscriptions?: AlarmSubscription[];
  /** Overrides of `DEFAULT_THRESHOLDS`, by key. */
  thresholds?: Record<string, unknown>;
}

/**
 * The stack's alarms, each notifying one SNS topic when it fires and when it recovers, and a
 * CloudWatch dashboard with the same signals and the handlers' session metrics.
 */
export class Monitoring extends pulumi.ComponentResource {
  public readonly topicArn: pulumi.Output<string>;
  public readonly dashboardName: pulumi.Output<string>;
  /** Alarm names by key (`fn-create-session-errors`, `api-5xx-rate`, ...). */
  public readonly alarmNames: Record<string, pulumi.Output<string>>;

  constructor(name: string, args: MonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("wallcrawler:infra:Monitoring", name, {}, opts);
    if (!args.functions || args.functions.length === 0)
      throw new Error("monitoring: functions must list at least one function");
    if (!args.apiId) throw new Error("monitoring: apiId is required");
    if (!args.cacheNodeIds || args.cacheNodeIds.length === 0)
      throw new Error("monitoring: cacheNodeIds must list at least one node");
    if (!args.natGatewayIds) throw new Error("monitoring: natGatewayIds is required (empty for none)");
    const thresholds = alarmThresholds(args.thresholds);
    const subscriptions = args.subscriptions ?? [];
    checkSubscriptions(subscriptions);

    // Alarm metadata only (names, states, thresholds): the topic needs no customer key, and
    // CloudWatch could not publish to one encrypted with the AWS-managed SNS key.
    const topic = new aws.sns.Topic(
      `${name}-alarms`,
      { displayName: "WallCrawler API alarms" },
      { parent: this },
    );
    subscriptions.forEach((subscription, index) => {
      new aws.sns.TopicSubscription(
        `${name}-alarms-${index}`,
        { topic: topic.arn, protocol: subscription.protocol, endpoint: subscription.endpoint },
        { parent: this },
      );
    });

    // The specs are derived from the shape (how many functions, nodes, NAT gateways, an ALB or
    // not), known now; the ids resolve later, so each alarm takes its own from the resolved list.
    const watched = pulumi
      .all([
        pulumi.all(args.functions.map((fn) => pulumi.output(fn.functionName))),
        pulumi.output(args.apiId),
        pulumi.all(args.cacheNodeIds.map((id) => pulumi.output(id))),
        pulumi.all(args.natGatewayIds.map((id) => pulumi.output(id))),
        args.alb
          ? pulumi.all([
              pulumi.output(args.alb.loadBalancerArnSuffix),
              pulumi.output(args.alb.targetGroupArnSuffix),
            ])
          : pulumi.output(undefined),
      ])
      .apply(([functionNames, apiId, cacheNodeIds, natGatewayIds, alb]): WatchedResources => ({
        functions: args.functions.map((fn, i) => ({ name: fn.name, functionName: functionNames[i] })),
        apiId,
        cacheNodeIds,
        natGatewayIds,
        alb: alb ? { loadBalancer: alb[0], targetGroup: alb[1] } : undefined,
      }));
    // The same specs with placeholder ids (`node1`, `nat1`): their order and keys name the resources,
    // so a resource's name never depends on an id that is unknown at preview.
    const shape = alarmSpecs(
      {
        functions: args.functions.map((fn) => ({ name: fn.name, functionName: "" })),
        apiId: "",
        cacheNodeIds: args.cacheNodeIds.map((_, i) => `node${i + 1}`),
        natGatewayIds: args.natGatewayIds.map((_, i) => `nat${i + 1}`),
        alb: args.alb ? { loadBalancer: "", targetGroup: "" } : undefined,
      },
      thresholds,
    );
    const specs = watched.apply((resolved) => alarmSpecs(resolved, thresholds));

    this.alarmNames = {};
    const alarms = shape.map((placeholder, index) => {
      const spec = specs.apply((all) => all[index]);
      const alarm = new aws.cloudwatch.MetricAlarm(
        `${name}-${placeholder.key}`,
        {
          alarmDescription: spec.description,
          comparisonOperator: "GreaterThanOrEqualToThreshold",
          threshold: placeholder.threshold,
          evaluationPeriods: placeholder.evaluationPeriods,
          datapointsToAlarm: placeholder.evaluationPeriods,
          treatMissingData: placeholder.treatMissingData,
          ...(placeholder.metric
            ? {
                namespace: placeholder.metric.namespace,
                metricName: placeholder.metric.metricName,
                dimensions: spec.apply((s) => s.metric!.dimensions),
                period: placeholder.periodSeconds,
                statistic: placeholder.metric.statistic,
                extendedStatistic: placeholder.metric.extendedStatistic,
              }
            : {
                metricQueries: spec.apply((s) => [
                  ...Object.entries(s.expression!.metrics).map(([id, ref]) => ({
                    id,
                    returnData: false,
                    metric: {
                      namespace: ref.namespace,
                      metricName: ref.metricName,
                      dimensions: ref.dimensions,
                      period: s.periodSeconds,
                      stat: "Sum",
                    },
                  })),
                  {
                    id: "result",
                    expression: s.expression!.expression,
                    label: s.expression!.label,
                    returnData: true,
                  },
                ]),
              }),
          alarmActions: [topic.arn],
          okActions: [topic.arn],
        },
        { parent: this },
      );
      this.alarmNames[placeholder.key] = alarm.name;
      return alarm;
    });

    const region = aws.getRegionOutput({}, { parent: this }).region;
    const dashboard = new aws.cloudwatch.Dashboard(
      `${name}-dashboard`,
      {
        // Dashboard names are unique per account and region: the project and stack make it so.
        dashboardName: `${pulumi.getProject()}-${pulumi.getStack()}`.replace(/[^A-Za-z0-9_-]/g, "-"),
        dashboardBody: pulumi
          .all([watched, region, pulumi.all(alarms.map((alarm) => alarm.arn))])
          .apply(([resolved, regionName, alarmArns]) =>
            JSON.stringify(dashboardBody({ ...resolved, region: regionName, alarmArns })),
          ),
      },
      { parent: this },
    );

    this.topicArn = topic.arn;
    this.dashboardName = dashboard.dashboardName;
    this.registerOutputs({ topicArn: this.topicArn, dashboardName: this.dashboardName });
  }
}
