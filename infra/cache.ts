import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";

export type CacheEngine = "redis" | "valkey";

export interface CacheArgs {
  vpcId: pulumi.Input<string>;
  /** Private subnets for the subnet group; Multi-AZ needs subnets in two or more zones. */
  subnetIds: pulumi.Input<pulumi.Input<string>[]>;
  /** The API functions' security group: the only source admitted on the Redis port. */
  clientSecurityGroupId: pulumi.Input<string>;
  /** `redis` (7.1) or `valkey` (8.0); default `redis`. */
  engine?: CacheEngine;
  /** Engine version; default 7.1 for Redis, 8.0 for Valkey. */
  engineVersion?: string;
  /** Default `cache.t4g.micro`. */
  nodeType?: string;
  /** Replicas per shard (0..5); with one or more, automatic failover and Multi-AZ are on. */
  replicas?: number;
  /** ElastiCache cluster mode (the handlers then set REDIS_CLUSTER=true). */
  clusterMode?: boolean;
  /** Shards in cluster mode (1..500); default 1. Ignored without cluster mode. */
  shards?: number;
  /** Daily snapshots kept (0 turns them off); default 1. */
  snapshotRetentionDays?: number;
  /** Recovery window of the AUTH-token secret in days (0 deletes at once); default 7. */
  secretRecoveryWindowDays?: number;
  /**
   * How a changed AUTH token reaches the replication group: `ROTATE` (default) makes Redis accept
   * the old and the new token; `SET` (the last step of a rotation, see docs/deploy.md) makes it
   * accept only the current one.
   */
  authTokenUpdateStrategy?: AuthTokenUpdateStrategy;
}

/** `DELETE` (moving to RBAC) is left out: the handlers authenticate with the token only. */
export type AuthTokenUpdateStrategy = "ROTATE" | "SET";

/** Checks the strategy argument; throws naming it. */
export function checkAuthTokenUpdateStrategy(strategy: string | undefined): AuthTokenUpdateStrategy {
  const value = strategy ?? "ROTATE";
  if (value !== "ROTATE" && value !== "SET") {
    throw new Error(`cache: authTokenUpdateStrategy must be ROTATE or SET, got "${value}"`);
  }
  return value;
}

/**
 * The cache cluster id of every node of the replication group: the `CacheClusterId` dimension of
 * ElastiCache's per-node metrics (memory, CPU, evictions). ElastiCache names member clusters
 * `<group>-001`, `-002`, ... without cluster mode and `<group>-<shard 0001..>-<node 001..>` with
 * it, so the ids are known from the topology before the group exists.
 */
export function cacheNodeIds(replicationGroupId: string, topology: CacheTopology): string[] {
  const pad = (n: number, width: number) => String(n).padStart(width, "0");
  if (topology.clusterMode === "enabled") {
    const ids: string[] = [];
    for (let shard = 1; shard <= topology.numNodeGroups!; shard++) {
      for (let node = 1; node <= topology.replicasPerNodeGroup! + 1; node++) {
        ids.push(`${replicationGroupId}-${pad(shard, 4)}-${pad(node, 3)}`);
      }
    }
    return ids;
  }
  return Array.from(
    { length: topology.numCacheClusters! },
    (_, i) => `${replicationGroupId}-${pad(i + 1, 3)}`,
  );
}

/** What the replication group gets, derived from the arguments (pure; unit-tested). */
export interface CacheTopology {
  engine: CacheEngine;
  engineVersion: string;
  /** ElastiCache parameter group family, e.g. `redis7`, `valkey8`. */
  parameterGroupFamily: string;
  /** The stack's own parameter group settings (see `cacheParameters`). */
  parameters: { name: string; value: string }[];
  clusterMode: "enabled" | "disabled";
  numCacheClusters?: number;
  numNodeGroups?: number;
  replicasPerNodeGroup?: number;
  automaticFailoverEnabled: boolean;
  multiAzEnabled: boolean;
}

/** Checks the arguments and works out the replication group's shape; throws naming the argument. */
export function cacheTopology(
  args: Pick<CacheArgs, "engine" | "engineVersion" | "replicas" | "clusterMode" | "shards">,
): CacheTopology {
  const engine = args.engine ?? "redis";
  if (engine !== "redis" && engine !== "valkey") {
    throw new Error(`cache: engine must be redis or valkey, got "${String(engine)}"`);
  }
  const engineVersion = args.engineVersion ?? (engine === "redis" ? "7.1" : "8.0");
  const major = Number(engineVersion.split(".")[0]);
  if (!Number.isInteger(major) || major < 7) {
    throw new Error(`cache: engineVersion must be 7 or later, got "${engineVersion}"`);
  }
  const replicas = args.replicas ?? 0;
  if (!Number.isInteger(replicas) || replicas < 0 || replicas > 5) {
    throw new Error(`cache: replicas must be a whole number from 0 to 5, got ${replicas}`);
  }
  const family = `${engine}${major}`;
  if (args.clusterMode) {
    const shards = args.shards ?? 1;
    if (!Number.isInteger(shards) || shards < 1 || shards > 500) {
      throw new Error(`cache: shards must be a whole number from 1 to 500, got ${shards}`);
    }
    return {
      engine,
      engineVersion,
      parameterGroupFamily: family,
      parameters: cacheParameters(true),
      clusterMode: "enabled",
      numNodeGroups: shards,
      replicasPerNodeGroup: replicas,
      // Cluster mode always has automatic failover; Multi-AZ needs a replica to fail over to.
      automaticFailoverEnabled: true,
      multiAzEnabled: replicas > 0,
    };
  }
  return {
    engine,
    engineVersion,
    parameterGroupFamily: family,
    parameters: cacheParameters(false),
    clusterMode: "disabled",
    numCacheClusters: replicas + 1,
    automaticFailoverEnabled: replicas > 0,
    multiAzEnabled: replicas > 0,
  };
}

/**
 * The settings the stack's own parameter group gives the engine. `maxmemory-policy noeviction`:
 * ElastiCache's default (`volatile-lru`) evicts keys that have a TTL, which are the session
 * records, while the `active` sets (no TTL) keep counting those sessions against the limit: a full
 * cache would then lose other tenants' sessions and leak slots. With `noeviction` a full cache
 * refuses writes instead (a 503, and the create scripts write nothing), and nothing already stored
 * is lost; per-session and per-project caps keep one tenant from getting there.
 */
export function cacheParameters(clusterMode: boolean): { name: string; value: string }[] {
  const parameters = [{ name: "maxmemory-policy", value: "noeviction" }];
  if (clusterMode) parameters.push({ name: "cluster-enabled", value: "yes" });
  return parameters;
}

/** The URL the handlers get in REDIS_ENDPOINT: always TLS (`rediss://`). */
export function redisUrl(host: string, port: number): string {
  return `rediss://${host}:${port}`;
}

/**
 * ElastiCache (Redis OSS or Valkey) for the session store: encrypted in transit and at rest,
 * AUTH token from `@pulumi/random` kept in Secrets Manager (the functions read it by ARN), on
 * the private subnets, reachable on 6379 only from the functions' security group.
 */
export class Cache extends pulumi.ComponentResource {
  /** `rediss://host:port`: the primary endpoint, or the configuration endpoint in cluster mode. */
  public readonly endpoint: pulumi.Output<string>;
  public readonly host: pulumi.Output<string>;
  public readonly port: pulumi.Output<number>;
  public readonly clusterMode: boolean;
  public readonly authSecretArn: pulumi.Output<string>;
  public readonly securityGroupId: pulumi.Output<string>;
  public readonly replicationGroupArn: pulumi.Output<string>;
  public readonly replicationGroupId: pulumi.Output<string>;
  /** Every node's cache cluster id (see `cacheNodeIds`), in order. */
  public readonly nodeIds: pulumi.Output<string>[];

  constructor(name: string, args: CacheArgs, opts?: pulumi.ComponentResourceOptions) {
    super("wallcrawler:infra:Cache", name, {}, opts);
    if (!args.vpcId) throw new Error("cache: vpcId is required");
    if (!args.subnetIds) throw new Error("cache: subnetIds is required");
    if (!args.clientSecurityGroupId) throw new Error("cache: clientSecurityGroupId is required");
    const topology = cacheTopology(args);
    const authTokenUpdateStrategy = checkAuthTokenUpdateStrategy(args.authTokenUpdateStrategy);
    const snapshots = args.snapshotRetentionDays ?? 1;
    if (!Number.isInteger(snapshots) || snapshots < 0 || snapshots > 35) {
      throw new Error(`cache: snapshotRetentionDays must be a whole number from 0 to 35, got ${snapshots}`);
    }
    this.clusterMode = topology.clusterMode === "enabled";

    // ElastiCache AUTH tokens: 16-128 printable characters without @ " /; letters and digits are safe.
    const authToken = new random.RandomPassword(
      `${name}-auth-token`,
      { length: 64, special: false },
      { parent: this },
    );
    const authSecret = new aws.secretsmanager.Secret(
      `${name}-auth-token`,
      {
        description: "WallCrawler API: ElastiCache AUTH token (read by the API functions)",
        recoveryWindowInDays: args.secretRecoveryWindowDays ?? 7,
      },
      { parent: this },
    );
    const securityGroup = new aws.ec2.SecurityGroup(
      `${name}-sg`,
      { vpcId: args.vpcId, description: "WallCrawler session cache: Redis from the API functions only" },
      { parent: this },
    );
    new aws.vpc.SecurityGroupIngressRule(
      `${name}-redis-in`,
      {
        securityGroupId: securityGroup.id,
        description: "Redis (TLS) from the API functions",
        ipProtocol: "tcp",
        fromPort: 6379,
        toPort: 6379,
        referencedSecurityGroupId: args.clientSecurityGroupId,
      },
      { parent: this },
    );
    new aws.vpc.SecurityGroupEgressRule(
      `${name}-functions-redis-out`,
      {
        securityGroupId: args.clientSecurityGroupId,
        description: "Redis (TLS) to the session cache",
        ipProtocol: "tcp",
        fromPort: 6379,
        toPort: 6379,
        referencedSecurityGroupId: securityGroup.id,
      },
      { parent: this },
    );

    const subnetGroup = new aws.elasticache.SubnetGroup(
      `${name}-subnets`,
      { description: "WallCrawler session cache: private subnets", subnetIds: args.subnetIds },
      { parent: this },
    );

    const parameterGroup = new aws.elasticache.ParameterGroup(
      `${name}-params`,
      {
        description: "WallCrawler session store: noeviction, so slot accounting never loses a record",
        family: topology.parameterGroupFamily,
        parameters: topology.parameters,
      },
      { parent: this },
    );

    const group = new aws.elasticache.ReplicationGroup(
      `${name}-redis`,
      {
        description: "WallCrawler API session store",
        engine: topology.engine,
        engineVersion: topology.engineVersion,
        parameterGroupName: parameterGroup.name,
        nodeType: args.nodeType ?? "cache.t4g.micro",
        port: 6379,
        clusterMode: topology.clusterMode,
        numCacheClusters: topology.numCacheClusters,
        numNodeGroups: topology.numNodeGroups,
        replicasPerNodeGroup: topology.replicasPerNodeGroup,
        automaticFailoverEnabled: topology.automaticFailoverEnabled,
        multiAzEnabled: topology.multiAzEnabled,
        transitEncryptionEnabled: true,
        transitEncryptionMode: "required",
        atRestEncryptionEnabled: true,
        authToken: authToken.result,
        authTokenUpdateStrategy,
        subnetGroupName: subnetGroup.name,
        securityGroupIds: [securityGroup.id],
        snapshotRetentionLimit: snapshots,
        autoMinorVersionUpgrade: true,
        applyImmediately: true,
      },
      { parent: this },
    );

    // The secret publishes a token only after the replication group accepts it: a changed token
    // first reaches the group (ROTATE: old and new both accepted; Pulumi waits until the group is
    // available again), and only then the secret the functions and the Proxy read. Reversed, a
    // container could fetch a token Redis still rejects for the minutes a rotation takes.
    new aws.secretsmanager.SecretVersion(
      `${name}-auth-token`,
      { secretId: authSecret.id, secretString: authToken.result },
      { parent: this, dependsOn: [group] },
    );

    this.host = this.clusterMode ? group.configurationEndpointAddress : group.primaryEndpointAddress;
    this.port = group.port.apply((port) => port ?? 6379);
    this.endpoint = pulumi.all([this.host, this.port]).apply(([host, port]) => redisUrl(host, port));
    this.authSecretArn = authSecret.arn;
    this.securityGroupId = securityGroup.id;
    this.replicationGroupArn = group.arn;
    this.replicationGroupId = group.id;
    this.nodeIds = cacheNodeIds("", topology).map((suffix) => pulumi.interpolate`${group.id}${suffix}`);

    this.registerOutputs({
      endpoint: this.endpoint,
      authSecretArn: this.authSecretArn,
      securityGroupId: this.securityGroupId,
    });
  }
}
