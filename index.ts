/**
 * The WallCrawler API stack: reads the stack's config once, builds the components, exports
 * what clients and the Proxy's stack need. Every config key is listed in docs/deploy.md.
 */
import * as pulumi from "@pulumi/pulumi";
import { ROUTES } from "./handlers/routes";
import { Api } from "./infra/api";
import { Cache, type CacheEngine } from "./infra/cache";
import { Connect } from "./infra/connect";
import { FALLBACK_NAME, Functions } from "./infra/functions";
import { Network, type NatGatewayStrategy } from "./infra/network";
import { Secrets, type ApiKeyEntryConfig, type ProjectEntryConfig } from "./infra/secrets";
import { Storage } from "./infra/storage";

const config = new pulumi.Config();
const stackName = pulumi.getStack();

// Network: a new VPC, or an existing one when vpcId is set (then both subnet lists are required).
const existingVpcId = config.get("vpcId");
const network = new Network("network", {
  existing: existingVpcId
    ? {
        vpcId: existingVpcId,
        privateSubnetIds: config.requireObject<string[]>("privateSubnetIds"),
        publicSubnetIds: config.requireObject<string[]>("publicSubnetIds"),
      }
    : undefined,
  cidrBlock: config.get("vpcCidr"),
  availabilityZones: config.getNumber("availabilityZones"),
  natGateways: config.get("natGateways") as NatGatewayStrategy | undefined,
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
  settings: config.getObject<Record<string, string>>("handlerSettings"),
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
export const stack = stackName;
