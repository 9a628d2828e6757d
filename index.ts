/**
 * The WallCrawler API stack: reads the stack's config once, builds the components, exports
 * what clients and the Proxy's stack need. Every config key is listed in docs/deploy.md.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { ROUTES } from "./handlers/routes";
import { Api } from "./infra/api";
import { Cache, type AuthTokenUpdateStrategy, type CacheEngine } from "./infra/cache";
import { Connect } from "./infra/connect";
import { checkHandlerSettings, FALLBACK_NAME, Functions } from "./infra/functions";
import { DependencyLayer } from "./infra/layer";
import {
  albNameFromDnsName,
  elbArnSuffix,
  expectedNatGateways,
  Monitoring,
  type AlarmSubscription,
} from "./infra/monitoring";
import { Network, type NatGatewayStrategy } from "./infra/network";
import { Secrets, type ApiKeyEntryConfig, type ProjectEntryConfig } from "./infra/secrets";
import { Storage } from "./infra/storage";

const config = new pulumi.Config();
const stackName = pulumi.getStack();

// The handlers' settings and log level are checked before any resource is made, so a bad value
// fails the preview instead of an `up` that has already built the cache. The result is the
// handlers' own view of them (token issuer and audience included).
const handlerSettings = config.getObject<Record<string, string>>("handlerSettings");
const logLevel = config.get("logLevel");
const handlerConfig = checkHandlerSettings(handlerSettings, logLevel);

// Network: a new VPC, or an existing one when vpcId is set (then both subnet lists are required).
const existingVpcId = config.get("vpcId");
const natGateways = config.get("natGateways") as NatGatewayStrategy | undefined;
const availabilityZones = config.getNumber("availabilityZones");
const network = new Network("network", {
  existing: existingVpcId
    ? {
        vpcId: existingVpcId,
        privateSubnetIds: config.requireObject<string[]>("privateSubnetIds"),
        publicSubnetIds: config.requireObject<string[]>("publicSubnetIds"),
      }
    : undefined,
  cidrBlock: config.get("vpcCidr"),
  availabilityZones,
  natGateways,
  secretsManagerEndpoint: config.getBoolean("secretsManagerEndpoint"),
});

const secretRecoveryWindowDays = config.getNumber("secretRecoveryWindowDays");

const cache = new Cache("cache", {
  vpcId: network.vpcId,
  subnetIds: network.privateSubnetIds,
  clientSecurityGroupId: network.functionsSecurityGroupId,
  engine: config.get("cacheEngine") as CacheEngine | undefined,
  engineVersion: config.get("cacheEngineVersion"),
  nodeType: config.get("cacheNodeType"),
  replicas: config.getNumber("cacheReplicas"),
  clusterMode: config.getBoolean("cacheClusterMode"),
  shards: config.getNumber("cacheShards"),
  snapshotRetentionDays: config.getNumber("cacheSnapshotRetentionDays"),
  secretRecoveryWindowDays,
  authTokenUpdateStrategy: config.get("cacheAuthTokenUpdateStrategy") as AuthTokenUpdateStrategy | undefined,
});

const secrets = new Secrets("secrets", {
  apiKeys: config.getObject<ApiKeyEntryConfig[]>("apiKeys") ?? [],
  projects: config.getObject<ProjectEntryConfig[]>("projects") ?? [],
  tokenKeyIds: config.getObject<string[]>("tokenKeyIds"),
  currentTokenKeyId: config.get("currentTokenKeyId"),
  tokenKeySet: config.getSecret("tokenKeySet"),
  recoveryWindowDays: secretRecoveryWindowDays,
});

const storage = new Storage("storage", {
  forceDestroy: config.getBoolean("storageForceDestroy"),
  retiredObjectDays: config.getNumber("retiredObjectDays"),
});

const connect = new Connect("connect", {
  existingHost: config.get("connectHost"),
  existingHostScheme: config.get("connectHostScheme") as "ws" | "wss" | undefined,
  vpcId: network.vpcId,
  vpcCidrBlock: network.vpcCidrBlock,
  publicSubnetIds: network.publicSubnetIds,
  certificateArn: config.get("certificateArn"),
  domainName: config.get("connectDomain"),
  proxyPort: config.getNumber("proxyPort"),
  healthCheckPath: config.get("proxyHealthCheckPath"),
  idleTimeoutSeconds: config.getNumber("albIdleTimeoutSeconds"),
  allowPlaintextConnect: config.getBoolean("allowPlaintextConnect"),
});

const logRetentionDays = config.getNumber("logRetentionDays");

// The runtime npm dependencies, one bundled file each, shared by every function (rebuilt only
// when package-lock.json changes).
const dependencyLayer = new DependencyLayer("deps", { projectDir: __dirname });

const functions = new Functions("api-fn", {
  routes: ROUTES,
  subnetIds: network.privateSubnetIds,
  securityGroupId: network.functionsSecurityGroupId,
  redisEndpoint: cache.endpoint,
  redisCluster: cache.clusterMode,
  redisAuthSecretArn: cache.authSecretArn,
  tokenKeysSecretArn: secrets.tokenKeysSecretArn,
  apiKeysSecretArn: secrets.apiKeysSecretArn,
  connectHost: connect.host,
  connectScheme: connect.scheme,
  bucketName: storage.bucketName,
  bucketArn: storage.bucketArn,
  memorySize: config.getNumber("lambdaMemoryMb"),
  timeout: config.getNumber("lambdaTimeoutSeconds"),
  reservedConcurrency: config.getNumber("lambdaReservedConcurrency"),
  logRetentionDays,
  settings: handlerSettings,
  logLevel,
  dependencyLayer: { arn: dependencyLayer.arn, packages: dependencyLayer.packages },
});

const api = new Api("api", {
  routes: [
    ...ROUTES.map((route) => ({
      name: route.name,
      routeKey: `${route.method} ${route.path}`,
      functionName: functions.functions[route.name].function.name,
      functionArn: functions.functions[route.name].function.arn,
    })),
    {
      name: FALLBACK_NAME,
      routeKey: "$default",
      functionName: functions.functions[FALLBACK_NAME].function.name,
      functionArn: functions.functions[FALLBACK_NAME].function.arn,
    },
  ],
  throttlingRateLimit: config.getNumber("throttleRateLimit"),
  throttlingBurstLimit: config.getNumber("throttleBurstLimit"),
  accessLogRetentionDays: logRetentionDays,
});

// NAT gateways of the stack's own VPC: their count follows from the config, their ids from a
// lookup once the VPC exists (the awsx VPC is a remote component whose children are not ours to read).
const natGatewayCount = expectedNatGateways({
  existingVpc: existingVpcId !== undefined,
  strategy: natGateways,
  availabilityZones,
});
const natGatewayIdList =
  natGatewayCount === 0
    ? pulumi.output<string[]>([])
    : aws.ec2
        .getNatGatewaysOutput({ vpcId: network.vpcId, filters: [{ name: "state", values: ["available"] }] })
        .ids.apply((ids) => {
          if (ids.length !== natGatewayCount) {
            throw new Error(
              `monitoring: expected ${natGatewayCount} NAT gateways in the VPC, found ${ids.length}`,
            );
          }
          return [...ids].sort();
        });

const alarmSubscriptions: AlarmSubscription[] = [
  ...(config.get("alarmEmail")
    ? [{ protocol: "email" as const, endpoint: config.require("alarmEmail") }]
    : []),
  ...(config.getObject<AlarmSubscription[]>("alarmSubscriptions") ?? []),
];

const monitoring = new Monitoring("monitoring", {
  functions: Object.values(functions.functions).map((fn) => ({
    name: fn.name,
    functionName: fn.function.name,
  })),
  apiId: api.apiId,
  cacheNodeIds: cache.nodeIds,
  natGatewayIds: Array.from({ length: natGatewayCount }, (_, i) => natGatewayIdList.apply((ids) => ids[i])),
  alb:
    connect.albDnsName && connect.targetGroupArn
      ? {
          // Connect exposes the ALB's DNS name, not its ARN: the name inside it finds the ARN suffix.
          loadBalancerArnSuffix: aws.lb.getLoadBalancerOutput({
            name: connect.albDnsName.apply(albNameFromDnsName),
          }).arnSuffix,
          targetGroupArnSuffix: connect.targetGroupArn.apply(elbArnSuffix),
        }
      : undefined,
  subscriptions: alarmSubscriptions,
  thresholds: config.getObject<Record<string, unknown>>("alarms"),
});

/** Base URL for the Browserbase SDK's `baseURL` (it appends `/v1/...`). */
export const apiUrl = api.url;
/** Host in every `connectUrl`; point the Proxy's clients (and DNS) here. */
export const connectHost = connect.host;
export const connectScheme = connect.scheme;
export const redisEndpoint = cache.endpoint;
export const redisAuthSecretArn = cache.authSecretArn;
export const apiKeysSecretArn = secrets.apiKeysSecretArn;
export const tokenKeysSecretArn = secrets.tokenKeysSecretArn;
export const currentTokenKeyId = secrets.currentTokenKeyId;
export const vpcId = network.vpcId;
export const privateSubnetIds = network.privateSubnetIds;
export const functionsSecurityGroupId = network.functionsSecurityGroupId;
/** The Proxy's stack adds its own Redis ingress rule to this group. */
export const cacheSecurityGroupId = cache.securityGroupId;
/** The ALB's own DNS name (absent with an existing connect host): the target of connectDomain's DNS record. */
export const albDnsName = connect.albDnsName;
/** The Proxy's ECS service registers its tasks here (absent with an existing connect host). */
export const proxyTargetGroupArn = connect.targetGroupArn;
/** The Proxy's tasks admit their port from this group. */
export const albSecurityGroupId = connect.albSecurityGroupId;
/** The object store: the Proxy's stack reads extension archives (and later session files) here. */
export const objectsBucketName = storage.bucketName;
export const objectsBucketArn = storage.bucketArn;
/** What the Proxy checks in every token: the handlers' issuer and audience (TOKEN_ISSUER / TOKEN_AUDIENCE settings). */
export const tokenIssuer = handlerConfig.tokenIssuer;
export const tokenAudience = handlerConfig.tokenAudience;
/** The Proxy's Redis client must use cluster mode when this is true. */
export const cacheClusterMode = cache.clusterMode;
/** One CloudWatch log group per function (route name, `fallback`, `sweep-sessions`), JSON lines. */
export const functionLogGroupNames = Object.fromEntries(
  Object.values(functions.functions).map((fn) => [fn.name, fn.logGroup.name]),
);
/** API Gateway's access log: one JSON line per request, `requestId` = the `x-request-id` clients see. */
export const apiAccessLogGroupName = api.accessLogGroupName;
/** Every alarm notifies this SNS topic when it fires and when it recovers. */
export const alarmTopicArn = monitoring.topicArn;
export const dashboardName = monitoring.dashboardName;
export const stack = stackName;
/** The shared-dependencies layer every function attaches (a new version when package-lock.json changes). */
export const dependencyLayerArn = dependencyLayer.arn;
