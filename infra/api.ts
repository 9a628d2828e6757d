import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { checkLogRetention } from "./functions";

/** A route of the HTTP API and the function that serves it. */
export interface ApiRoute {
  /** The function's short name (used in resource names). */
  name: string;
  /** `POST /v1/sessions`, or `$default`. */
  routeKey: string;
  functionName: pulumi.Input<string>;
  functionArn: pulumi.Input<string>;
}

export interface ApiArgs {
  routes: ApiRoute[];
  /** Steady-state requests per second across the stage; default 50. */
  throttlingRateLimit?: number;
  /** Burst of requests above the rate; default 100. */
  throttlingBurstLimit?: number;
  /** Retention of the access-log group; default 30. */
  accessLogRetentionDays?: number;
}

const ROUTE_KEY_PATTERN = /^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|ANY) (\/[A-Za-z0-9._~{}+-]*)+$/;

/** Checks route keys (unique, well-formed, exactly one `$default`); throws naming the bad one. */
export function checkRouteKeys(routeKeys: readonly string[]): void {
  const seen = new Set<string>();
  for (const key of routeKeys) {
    if (key !== "$default" && !ROUTE_KEY_PATTERN.test(key))
      throw new Error(`api: route key "${key}" is malformed`);
    if (seen.has(key)) throw new Error(`api: route key "${key}" appears twice`);
    seen.add(key);
  }
  if (!seen.has("$default")) throw new Error("api: routes need a $default route (the JSON 404/405 fallback)");
}

/**
 * The part of a source ARN after the API's execution ARN that one route's invocations carry:
 * `*` for the stage, then the method and the path with each `{param}` as `*`, or `$default`.
 */
export function invokeSourceSuffix(routeKey: string): string {
  if (routeKey === "$default") return "/*/$default";
  const [method, path] = routeKey.split(" ");
  return `/*/${method}${path.replace(/\{[^}]+\}/g, "*")}`;
}

/**
 * The access-log line: one JSON object per request, with no header, query string or body (the
 * API key travels in a header and must never reach a log).
 */
export function accessLogFormat(): string {
  return JSON.stringify({
    requestId: "$context.requestId",
    requestTime: "$context.requestTime",
    sourceIp: "$context.identity.sourceIp",
    httpMethod: "$context.httpMethod",
    routeKey: "$context.routeKey",
    path: "$context.path",
    status: "$context.status",
    protocol: "$context.protocol",
    responseLength: "$context.responseLength",
    responseLatency: "$context.responseLatency",
    integrationStatus: "$context.integrationStatus",
    integrationLatency: "$context.integrationLatency",
    integrationError: "$context.integrationErrorMessage",
    // The Lambda invocation's own request id: matches the platform's START/REPORT lines and the trace.
    lambdaRequestId: "$context.integration.requestId",
    errorMessage: "$context.error.message",
  });
}

/** Checks the throttling numbers; throws naming the argument. */
export function checkThrottling(rate: number, burst: number): void {
  if (!Number.isFinite(rate) || rate <= 0)
    throw new Error(`api: throttlingRateLimit must be above 0, got ${rate}`);
  if (!Number.isInteger(burst) || burst < 1)
    throw new Error(`api: throttlingBurstLimit must be a whole number above 0, got ${burst}`);
}

/**
 * The public HTTP API: API Gateway v2, one Lambda proxy integration (payload 2.0) per route,
 * the `$default` stage with auto-deploy, default throttling and JSON access logs. Each function
 * may be invoked only by this API, on its own route.
 */
export class Api extends pulumi.ComponentResource {
  public readonly url: pulumi.Output<string>;
  public readonly apiId: pulumi.Output<string>;
  public readonly executionArn: pulumi.Output<string>;
  public readonly accessLogGroupArn: pulumi.Output<string>;
  public readonly accessLogGroupName: pulumi.Output<string>;

  constructor(name: string, args: ApiArgs, opts?: pulumi.ComponentResourceOptions) {
    super("wallcrawler:infra:Api", name, {}, opts);
    if (!args.routes) throw new Error("api: routes is required");
    checkRouteKeys(args.routes.map((route) => route.routeKey));
    const rate = args.throttlingRateLimit ?? 50;
    const burst = args.throttlingBurstLimit ?? 100;
    checkThrottling(rate, burst);
    const retentionInDays = checkLogRetention(
      args.accessLogRetentionDays ?? 30,
      "api: accessLogRetentionDays",
    );

    const api = new aws.apigatewayv2.Api(
      `${name}-http`,
      { protocolType: "HTTP", description: "WallCrawler API (Browserbase v1 compatible)" },
      { parent: this },
    );

    for (const route of args.routes) {
      const integration = new aws.apigatewayv2.Integration(
        `${name}-${route.name}`,
        {
          apiId: api.id,
          integrationType: "AWS_PROXY",
          integrationMethod: "POST",
          integrationUri: route.functionArn,
          payloadFormatVersion: "2.0",
          timeoutMilliseconds: 29000,
        },
        { parent: this },
      );
      new aws.apigatewayv2.Route(
        `${name}-${route.name}`,
        {
          apiId: api.id,
          routeKey: route.routeKey,
          target: pulumi.interpolate`integrations/${integration.id}`,
        },
        { parent: this },
      );
      new aws.lambda.Permission(
        `${name}-${route.name}-invoke`,
        {
          action: "lambda:InvokeFunction",
          principal: "apigateway.amazonaws.com",
          function: route.functionName,
          sourceArn: pulumi.interpolate`${api.executionArn}${invokeSourceSuffix(route.routeKey)}`,
        },
        { parent: this },
      );
    }

    const accessLogs = new aws.cloudwatch.LogGroup(
      `${name}-access-logs`,
      { retentionInDays },
      { parent: this },
    );
    const stage = new aws.apigatewayv2.Stage(
      `${name}-stage`,
      {
        apiId: api.id,
        name: "$default",
        autoDeploy: true,
        defaultRouteSettings: {
          throttlingRateLimit: rate,
          throttlingBurstLimit: burst,
          detailedMetricsEnabled: true,
        },
        accessLogSettings: { destinationArn: accessLogs.arn, format: accessLogFormat() },
      },
      { parent: this },
    );

    this.url = stage.invokeUrl.apply((url) => url.replace(/\/$/, ""));
    this.apiId = api.id;
    this.executionArn = api.executionArn;
    this.accessLogGroupArn = accessLogs.arn;
    this.accessLogGroupName = accessLogs.name;
    this.registerOutputs({ url: this.url, apiId: this.apiId });
  }
}
