/**
 * Pulumi mocks shared by every infra test file: each resource type the program makes gets
 * realistic computed outputs (ARNs, endpoints, DNS names, the awsx VPC's subnet ids), any other
 * type or invoke throws, and every registration is recorded for assertions.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- resource inputs and state are untyped property bags here */
import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";

export const PROJECT = "wallcrawler-api";
export const STACK = "dev";
export const ACCOUNT = "123456789012";
export const REGION = "us-west-2";

export interface Recorded {
  type: string;
  name: string;
  id: string;
  inputs: Record<string, any>;
  state: Record<string, any>;
}

/** Every resource registered with the mocks, in order. */
export const recorded: Recorded[] = [];
/** Types or invokes the mocks were asked for and do not know (a test asserts it stays empty). */
export const unknownCalls: string[] = [];
/** Every secret value the mocks generated (random passwords and bytes): none may leak. */
export const generatedSecrets: string[] = [];

function digest(text: string, length: number): string {
  return createHash("sha256").update(text).digest("hex").slice(0, length);
}

/** Deterministic "random" outputs, distinct per resource name. */
function fakeRandom(type: string, name: string, inputs: Record<string, any>): Record<string, any> {
  if (type === "random:index/randomPassword:RandomPassword") {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const seed = createHash("sha512").update(`password:${name}`).digest();
    const result = Array.from(
      { length: inputs.length ?? 16 },
      (_, i) => alphabet[seed[i % seed.length] % alphabet.length],
    ).join("");
    generatedSecrets.push(result);
    return { ...inputs, result, bcryptHash: `$2a$10$${digest(result, 53)}` };
  }
  const bytes = createHash("sha256")
    .update(`bytes:${name}`)
    .digest()
    .subarray(0, inputs.length ?? 32);
  generatedSecrets.push(bytes.toString("base64"), bytes.toString("base64url"), bytes.toString("hex"));
  return { ...inputs, base64: bytes.toString("base64"), hex: bytes.toString("hex") };
}

const arn = (service: string, resource: string) => `arn:aws:${service}:${REGION}:${ACCOUNT}:${resource}`;

function fakeResource(args: pulumi.runtime.MockResourceArgs): { id: string; state: Record<string, any> } {
  const { type, name } = args;
  const inputs = args.inputs as Record<string, any>;
  const suffix = digest(`${type}:${name}`, 8);
  const physical = inputs.name ?? `${name}-${suffix}`;
  switch (type) {
    case "awsx:ec2:Vpc": {
      const vpcId = `vpc-${digest(name, 17)}`;
      const zones = Number(inputs.numberOfAvailabilityZones ?? 3);
      const ids = (kind: string) =>
        Array.from({ length: zones }, (_, i) => `subnet-${digest(`${name}:${kind}:${i}`, 17)}`);
      return {
        id: vpcId,
        state: {
          vpcId,
          privateSubnetIds: ids("private"),
          publicSubnetIds: ids("public"),
          isolatedSubnetIds: [],
          subnets: [],
          routeTables: [],
          natGateways: [],
          eips: [],
          vpcEndpoints: [],
        },
      };
    }
    case "aws:ec2/securityGroup:SecurityGroup": {
      const id = `sg-${digest(name, 17)}`;
      return {
        id,
        state: { ...inputs, name: physical, arn: arn("ec2", `security-group/${id}`), ownerId: ACCOUNT },
      };
    }
    case "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
    case "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": {
      const id = `sgr-${digest(name, 17)}`;
      return {
        id,
        state: { ...inputs, arn: arn("ec2", `security-group-rule/${id}`), securityGroupRuleId: id },
      };
    }
    case "aws:ec2/vpcEndpoint:VpcEndpoint": {
      const id = `vpce-${digest(name, 17)}`;
      return {
        id,
        state: { ...inputs, arn: arn("ec2", `vpc-endpoint/${id}`), dnsEntries: [], state: "available" },
      };
    }
    case "random:index/randomPassword:RandomPassword":
    case "random:index/randomBytes:RandomBytes":
      return { id: "none", state: fakeRandom(type, name, inputs) };
    case "aws:secretsmanager/secret:Secret": {
      const secretArn = arn("secretsmanager", `secret:${physical}-${digest(name, 6)}`);
      return { id: secretArn, state: { ...inputs, name: physical, arn: secretArn } };
    }
    case "aws:secretsmanager/secretVersion:SecretVersion": {
      const versionId = `v-${digest(name, 12)}`;
      return { id: `${inputs.secretId}|${versionId}`, state: { ...inputs, arn: inputs.secretId, versionId } };
    }
    case "aws:elasticache/parameterGroup:ParameterGroup":
      return {
        id: physical,
        state: { ...inputs, name: physical, arn: arn("elasticache", `parametergroup:${physical}`) },
      };
    case "aws:elasticache/subnetGroup:SubnetGroup":
      return {
        id: physical,
        state: { ...inputs, name: physical, arn: arn("elasticache", `subnetgroup:${physical}`) },
      };
    case "aws:elasticache/replicationGroup:ReplicationGroup": {
      const id = inputs.replicationGroupId ?? `${name}-${suffix}`.toLowerCase().slice(0, 40);
      const host = (prefix: string) => `${prefix}.${id}.abc123.usw2.cache.amazonaws.com`;
      const cluster = inputs.clusterMode === "enabled";
      return {
        id,
        state: {
          ...inputs,
          arn: arn("elasticache", `replicationgroup:${id}`),
          port: inputs.port ?? 6379,
          primaryEndpointAddress: cluster ? undefined : host("master"),
          readerEndpointAddress: cluster ? undefined : host("replica"),
          configurationEndpointAddress: cluster ? host("clustercfg") : undefined,
          memberClusters: [`${id}-001`],
        },
      };
    }
    case "aws:iam/role:Role":
      return {
        id: physical,
        state: {
          ...inputs,
          name: physical,
          arn: `arn:aws:iam::${ACCOUNT}:role/${physical}`,
          uniqueId: `AROA${digest(name, 17).toUpperCase()}`,
        },
      };
    case "aws:iam/rolePolicy:RolePolicy":
      return { id: `${inputs.role}:${physical}`, state: { ...inputs, name: physical } };
    case "aws:cloudwatch/logGroup:LogGroup":
      return {
        id: physical,
        state: { ...inputs, name: physical, arn: arn("logs", `log-group:${physical}`) },
      };
    case "aws:lambda/function:Function": {
      const functionArn = arn("lambda", `function:${physical}`);
      return {
        id: physical,
        state: {
          ...inputs,
          name: physical,
          arn: functionArn,
          qualifiedArn: `${functionArn}:$LATEST`,
          invokeArn: `arn:aws:apigateway:${REGION}:lambda:path/2015-03-31/functions/${functionArn}/invocations`,
          version: "$LATEST",
          lastModified: "2026-01-01T00:00:00.000+0000",
          sourceCodeHash: digest(`code:${name}`, 44),
        },
      };
    }
    case "aws:lambda/layerVersion:LayerVersion": {
      const layerArn = arn("lambda", `layer:${inputs.layerName ?? physical}`);
      return {
        id: `${layerArn}:1`,
        state: {
          ...inputs,
          arn: `${layerArn}:1`,
          layerArn,
          version: "1",
          codeSha256: digest(`layer:${name}`, 44),
          createdDate: "2026-01-01T00:00:00.000+0000",
        },
      };
    }
    case "aws:s3/bucket:Bucket": {
      // S3 bucket names are lower case; the physical name here may carry upper-case digest letters.
      const bucket = physical.toLowerCase();
      return {
        id: bucket,
        state: { ...inputs, bucket, arn: `arn:aws:s3:::${bucket}`, region: REGION },
      };
    }
    case "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":
    case "aws:s3/bucketOwnershipControls:BucketOwnershipControls":
    case "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration":
    case "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration":
    case "aws:s3/bucketPolicy:BucketPolicy":
      return { id: `${inputs.bucket}`, state: { ...inputs } };
    case "aws:lambda/permission:Permission":
      return { id: `${physical}`, state: { ...inputs, statementId: physical } };
    case "aws:cloudwatch/eventRule:EventRule":
      return {
        id: `${physical}`,
        state: { ...inputs, name: physical, arn: arn("events", `rule/${physical}`) },
      };
    case "aws:cloudwatch/eventTarget:EventTarget":
      return { id: `${inputs.rule}-${digest(name, 8)}`, state: { ...inputs } };
    case "aws:apigatewayv2/api:Api": {
      const id = digest(name, 10);
      return {
        id,
        state: {
          ...inputs,
          name: physical,
          arn: `arn:aws:apigateway:${REGION}::/apis/${id}`,
          apiEndpoint: `https://${id}.execute-api.${REGION}.amazonaws.com`,
          executionArn: arn("execute-api", id),
        },
      };
    }
    case "aws:apigatewayv2/integration:Integration":
    case "aws:apigatewayv2/route:Route":
      return { id: digest(name, 7), state: { ...inputs } };
    case "aws:apigatewayv2/stage:Stage": {
      const apiId = inputs.apiId as string;
      return {
        id: inputs.name,
        state: {
          ...inputs,
          arn: `arn:aws:apigateway:${REGION}::/apis/${apiId}/stages/${inputs.name}`,
          invokeUrl: `https://${apiId}.execute-api.${REGION}.amazonaws.com/`,
          executionArn: `${arn("execute-api", apiId)}/${inputs.name}`,
        },
      };
    }
    case "aws:lb/loadBalancer:LoadBalancer": {
      const short = `${name}`.slice(0, 20);
      const lbArn = arn("elasticloadbalancing", `loadbalancer/app/${short}/${digest(name, 16)}`);
      return {
        id: lbArn,
        state: {
          ...inputs,
          name: short,
          arn: lbArn,
          arnSuffix: `app/${short}/${digest(name, 16)}`,
          dnsName: `${short}-${parseInt(digest(name, 8), 16)}.${REGION}.elb.amazonaws.com`,
          zoneId: "Z1H1FL5HABSF5",
        },
      };
    }
    case "aws:lb/targetGroup:TargetGroup": {
      const short = `${name}`.slice(0, 20);
      const tgArn = arn("elasticloadbalancing", `targetgroup/${short}/${digest(name, 16)}`);
      return {
        id: tgArn,
        state: { ...inputs, name: short, arn: tgArn, arnSuffix: `targetgroup/${short}/${digest(name, 16)}` },
      };
    }
    case "aws:lb/listener:Listener": {
      const listenerArn = arn("elasticloadbalancing", `listener/app/${digest(name, 8)}/${digest(name, 16)}`);
      return { id: listenerArn, state: { ...inputs, arn: listenerArn } };
    }
    case "aws:sns/topic:Topic":
      return { id: arn("sns", physical), state: { ...inputs, name: physical, arn: arn("sns", physical) } };
    case "aws:sns/topicSubscription:TopicSubscription":
      return {
        id: `${inputs.topic}:${digest(name, 36)}`,
        state: { ...inputs, arn: `${inputs.topic}:${digest(name, 36)}`, pendingConfirmation: true },
      };
    case "aws:cloudwatch/metricAlarm:MetricAlarm":
      return {
        id: physical,
        state: { ...inputs, name: physical, arn: arn("cloudwatch", `alarm:${physical}`) },
      };
    case "aws:cloudwatch/dashboard:Dashboard":
      return {
        id: inputs.dashboardName,
        state: {
          ...inputs,
          dashboardArn: `arn:aws:cloudwatch::${ACCOUNT}:dashboard/${inputs.dashboardName}`,
        },
      };
    case "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
      return {
        id: `arn:aws:iam::${ACCOUNT}:oidc-provider/token.actions.githubusercontent.com`,
        state: {
          ...inputs,
          arn: `arn:aws:iam::${ACCOUNT}:oidc-provider/token.actions.githubusercontent.com`,
        },
      };
    default:
      if (type.startsWith("pulumi:providers:") || type.startsWith("wallcrawler:"))
        return { id: `${name}-id`, state: {} };
      unknownCalls.push(`resource ${type}`);
      throw new Error(`mocks: no fake for resource type ${type} (${name})`);
  }
}

const mocks: pulumi.runtime.Mocks = {
  newResource(args) {
    const made = fakeResource(args);
    recorded.push({ type: args.type, name: args.name, id: made.id, inputs: args.inputs, state: made.state });
    return made;
  },
  call(args) {
    switch (args.token) {
      case "aws:index/getRegion:getRegion":
        return {
          id: REGION,
          name: REGION,
          region: REGION,
          endpoint: `ec2.${REGION}.amazonaws.com`,
          description: "US West (Oregon)",
        };
      case "aws:ec2/getVpc:getVpc":
        return {
          id: args.inputs.id,
          cidrBlock: "10.20.0.0/16",
          arn: arn("ec2", `vpc/${args.inputs.id}`),
          default: false,
          state: "available",
        };
      case "aws:ec2/getNatGateways:getNatGateways":
        // The awsx VPC's NAT gateways are not visible under mocks: one per `Single` VPC.
        return {
          id: args.inputs.vpcId,
          vpcId: args.inputs.vpcId,
          ids: [`nat-${digest(args.inputs.vpcId, 17)}`],
        };
      case "aws:lb/getLoadBalancer:getLoadBalancer": {
        const lb = recorded.find((r) => r.type === T.lb && r.state.name === args.inputs.name);
        if (!lb) throw new Error(`mocks: no load balancer named ${args.inputs.name}`);
        return { ...lb.state, id: lb.id };
      }
      default:
        unknownCalls.push(`call ${args.token}`);
        throw new Error(`mocks: no fake for invoke ${args.token}`);
    }
  },
};

let installed: Promise<void> | undefined;

/** Installs the mocks once per test run (every infra test file calls this before importing the program). */
export function installMocks(): Promise<void> {
  installed ??= pulumi.runtime.setMocks(mocks, PROJECT, STACK, false);
  return installed;
}

const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";

/** An input as the mocks received it, with secret wrappers removed (recursively). */
export function plain(value: any): any {
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === "object" && value[SECRET_SIG] === SECRET_VALUE) return plain(value.value);
  if (value && typeof value === "object" && value.constructor === Object) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

/** True when the mocks received `value` marked secret. */
export function isSecretInput(value: any): boolean {
  return Boolean(value && typeof value === "object" && value[SECRET_SIG] === SECRET_VALUE);
}

/** The value of an Output, for assertions. */
export function promiseOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply(resolve));
}

/**
 * Waits until every pending registration and invoke has been answered. A resource whose inputs
 * never resolve (a CallbackFunction whose code failed to serialize) never registers: after
 * `timeoutMs` this rejects instead of hanging. The bound only ends a hang: serializing every
 * function's code takes about 10 s alone on 2 cores and three times that with the cores busy.
 */
export async function settle(timeoutMs = 180_000): Promise<void> {
  // Internal to @pulumi/pulumi (what `pulumi.runtime.disconnect` waits on); exported at run time.
  const drained = (pulumi.runtime as unknown as { waitForRPCs(): Promise<void> }).waitForRPCs();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(`registrations still pending after ${timeoutMs} ms (${recorded.length} registered)`),
        ),
      timeoutMs,
    );
  });
  try {
    await Promise.race([drained, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resources of a type (token), optionally only those whose name starts with `prefix`. */
export function ofType(type: string, prefix = ""): Recorded[] {
  return recorded.filter((r) => r.type === type && r.name.startsWith(prefix));
}

/** The one resource of a type and exact name; throws if absent. */
export function find(type: string, name: string): Recorded {
  const found = recorded.find((r) => r.type === type && r.name === name);
  if (!found) throw new Error(`no ${type} named ${name} was registered`);
  return found;
}

export const T = {
  vpc: "awsx:ec2:Vpc",
  sg: "aws:ec2/securityGroup:SecurityGroup",
  ingress: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
  egress: "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
  vpcEndpoint: "aws:ec2/vpcEndpoint:VpcEndpoint",
  password: "random:index/randomPassword:RandomPassword",
  bytes: "random:index/randomBytes:RandomBytes",
  secret: "aws:secretsmanager/secret:Secret",
  secretVersion: "aws:secretsmanager/secretVersion:SecretVersion",
  subnetGroup: "aws:elasticache/subnetGroup:SubnetGroup",
  parameterGroup: "aws:elasticache/parameterGroup:ParameterGroup",
  replicationGroup: "aws:elasticache/replicationGroup:ReplicationGroup",
  role: "aws:iam/role:Role",
  rolePolicy: "aws:iam/rolePolicy:RolePolicy",
  logGroup: "aws:cloudwatch/logGroup:LogGroup",
  lambda: "aws:lambda/function:Function",
  layer: "aws:lambda/layerVersion:LayerVersion",
  permission: "aws:lambda/permission:Permission",
  eventRule: "aws:cloudwatch/eventRule:EventRule",
  eventTarget: "aws:cloudwatch/eventTarget:EventTarget",
  api: "aws:apigatewayv2/api:Api",
  integration: "aws:apigatewayv2/integration:Integration",
  route: "aws:apigatewayv2/route:Route",
  stage: "aws:apigatewayv2/stage:Stage",
  lb: "aws:lb/loadBalancer:LoadBalancer",
  targetGroup: "aws:lb/targetGroup:TargetGroup",
  listener: "aws:lb/listener:Listener",
  bucket: "aws:s3/bucket:Bucket",
  publicAccessBlock: "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
  ownership: "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
  encryption: "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
  lifecycle: "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
  bucketPolicy: "aws:s3/bucketPolicy:BucketPolicy",
  topic: "aws:sns/topic:Topic",
  subscription: "aws:sns/topicSubscription:TopicSubscription",
  alarm: "aws:cloudwatch/metricAlarm:MetricAlarm",
  dashboard: "aws:cloudwatch/dashboard:Dashboard",
  oidcProvider: "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
} as const;
