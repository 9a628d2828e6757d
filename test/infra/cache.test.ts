import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { expect } from "chai";
import {
  Cache,
  cacheNodeIds,
  cacheTopology,
  checkAuthTokenUpdateStrategy,
  redisUrl,
} from "../../infra/cache";
import { find, installMocks, isSecretInput, plain, promiseOf, recorded, settle, T } from "./mocks";

describe("infra/cache", () => {
  describe("cacheTopology", () => {
    it("runs one node without failover when there are no replicas", () => {
      expect(cacheTopology({})).to.deep.include({
        engine: "redis",
        engineVersion: "7.1",
        parameterGroupFamily: "redis7",
        clusterMode: "disabled",
        numCacheClusters: 1,
        automaticFailoverEnabled: false,
        multiAzEnabled: false,
      });
    });

    it("turns on automatic failover and Multi-AZ with a replica", () => {
      expect(cacheTopology({ replicas: 2 })).to.deep.include({
        numCacheClusters: 3,
        automaticFailoverEnabled: true,
        multiAzEnabled: true,
      });
    });

    it("uses shards and the cluster parameter group in cluster mode", () => {
      const topology = cacheTopology({ engine: "valkey", clusterMode: true, shards: 3, replicas: 1 });
      expect(topology).to.deep.include({
        engine: "valkey",
        engineVersion: "8.0",
        parameterGroupFamily: "valkey8",
        clusterMode: "enabled",
        numNodeGroups: 3,
        replicasPerNodeGroup: 1,
        automaticFailoverEnabled: true,
        multiAzEnabled: true,
      });
      expect(topology.numCacheClusters).to.equal(undefined);
    });

    it("refuses engines older than 7, bad replica and shard counts, naming the argument", () => {
      expect(() => cacheTopology({ engineVersion: "6.2" })).to.throw(/engineVersion/);
      expect(() => cacheTopology({ replicas: 6 })).to.throw(/replicas/);
      expect(() => cacheTopology({ clusterMode: true, shards: 0 })).to.throw(/shards/);
      expect(() => cacheTopology({ engine: "memcached" as never })).to.throw(/engine/);
    });

    it("names every node's cache cluster as ElastiCache does, with and without cluster mode", () => {
      expect(cacheNodeIds("rg", cacheTopology({ replicas: 2 }))).to.deep.equal([
        "rg-001",
        "rg-002",
        "rg-003",
      ]);
      expect(cacheNodeIds("rg", cacheTopology({ clusterMode: true, shards: 2, replicas: 1 }))).to.deep.equal([
        "rg-0001-001",
        "rg-0001-002",
        "rg-0002-001",
        "rg-0002-002",
      ]);
    });

    it("rotates the AUTH token by default and takes SET for the last step only", () => {
      expect(checkAuthTokenUpdateStrategy(undefined)).to.equal("ROTATE");
      expect(checkAuthTokenUpdateStrategy("SET")).to.equal("SET");
      expect(() => checkAuthTokenUpdateStrategy("DELETE")).to.throw(
        /authTokenUpdateStrategy must be ROTATE or SET/,
      );
    });

    it("always gives the handlers a TLS URL", () => {
      expect(redisUrl("master.x.cache.amazonaws.com", 6379)).to.equal(
        "rediss://master.x.cache.amazonaws.com:6379",
      );
    });
  });

  describe("the Cache component", function () {
    this.timeout(20000);
    let single: Cache;
    let cluster: Cache;
    /** The options each child of t-cache was registered with, by `<type> <name>`. */
    const childOptions = new Map<string, pulumi.ResourceOptions>();

    before(async () => {
      await installMocks();
      const common = {
        vpcId: "vpc-0123",
        subnetIds: ["subnet-a", "subnet-b"],
        clientSecurityGroupId: "sg-functions",
      };
      single = new Cache(
        "t-cache",
        { ...common, replicas: 1, nodeType: "cache.r7g.large" },
        {
          transformations: [
            (args) => {
              childOptions.set(`${args.type} ${args.name}`, args.opts);
              return undefined;
            },
          ],
        },
      );
      cluster = new Cache("t-cluster", {
        ...common,
        clusterMode: true,
        shards: 2,
        replicas: 1,
        engine: "valkey",
        authTokenUpdateStrategy: "SET",
      });
      await promiseOf(single.endpoint);
      await promiseOf(cluster.endpoint);
      await settle();
    });

    it("encrypts in transit (required) and at rest, with the generated AUTH token marked secret", () => {
      const group = find(T.replicationGroup, "t-cache-redis");
      expect(group.inputs).to.include({
        transitEncryptionEnabled: true,
        transitEncryptionMode: "required",
        atRestEncryptionEnabled: true,
        nodeType: "cache.r7g.large",
        automaticFailoverEnabled: true,
        multiAzEnabled: true,
        numCacheClusters: 2,
      });
      expect(isSecretInput(group.inputs.authToken)).to.equal(true);
      expect(plain(group.inputs.authToken)).to.equal(find(T.password, "t-cache-auth-token").state.result);
      expect(find(T.password, "t-cache-auth-token").inputs).to.include({ length: 64, special: false });
    });

    it("keeps the AUTH token in a Secrets Manager secret and exports only its ARN", async () => {
      const secret = find(T.secret, "t-cache-auth-token");
      const version = find(T.secretVersion, "t-cache-auth-token");
      expect(version.inputs.secretId).to.equal(secret.id);
      expect(plain(version.inputs.secretString)).to.equal(
        find(T.password, "t-cache-auth-token").state.result,
      );
      expect(await promiseOf(single.authSecretArn)).to.equal(secret.state.arn);
    });

    it("publishes a new AUTH token in the secret only after the replication group accepts it (ROTATE)", async () => {
      const group = find(T.replicationGroup, "t-cache-redis");
      expect(group.inputs.authTokenUpdateStrategy).to.equal("ROTATE");
      expect(find(T.replicationGroup, "t-cluster-redis").inputs.authTokenUpdateStrategy).to.equal("SET");
      const dependsOn = [childOptions.get(`${T.secretVersion} t-cache-auth-token`)]
        .flatMap((opts) => (opts?.dependsOn ? ([] as unknown[]).concat(opts.dependsOn) : []))
        .filter((dep): dep is aws.elasticache.ReplicationGroup =>
          aws.elasticache.ReplicationGroup.isInstance(dep),
        );
      expect(dependsOn, "the secret version depends on the replication group").to.have.length(1);
      expect(await promiseOf(dependsOn[0].urn)).to.match(/::t-cache-redis$/);
      // And so it registers after it: the engine updates the group first.
      const order = recorded.map((r) => `${r.type} ${r.name}`);
      expect(order.indexOf(`${T.secretVersion} t-cache-auth-token`)).to.be.greaterThan(
        order.indexOf(`${T.replicationGroup} t-cache-redis`),
      );
    });

    it("exposes every node's cache cluster id for the alarms", async () => {
      const id = find(T.replicationGroup, "t-cache-redis").id;
      expect(await Promise.all(single.nodeIds.map(promiseOf))).to.deep.equal([`${id}-001`, `${id}-002`]);
      expect(cluster.nodeIds).to.have.length(4);
      expect(await promiseOf(cluster.nodeIds[3])).to.match(/-0002-002$/);
    });

    it("sits on a subnet group of the given subnets behind its own security group", () => {
      const group = find(T.replicationGroup, "t-cache-redis");
      const subnetGroup = find(T.subnetGroup, "t-cache-subnets");
      expect(subnetGroup.inputs.subnetIds).to.deep.equal(["subnet-a", "subnet-b"]);
      expect(group.inputs.subnetGroupName).to.equal(subnetGroup.state.name);
      expect(group.inputs.securityGroupIds).to.deep.equal([find(T.sg, "t-cache-sg").id]);
    });

    it("admits 6379 only from the functions' security group, and lets the functions send to it", () => {
      const sg = find(T.sg, "t-cache-sg");
      const ingress = recorded.filter((r) => r.type === T.ingress && r.inputs.securityGroupId === sg.id);
      expect(ingress).to.have.length(1);
      expect(ingress[0].inputs).to.include({
        ipProtocol: "tcp",
        fromPort: 6379,
        toPort: 6379,
        referencedSecurityGroupId: "sg-functions",
      });
      expect(ingress[0].inputs).to.not.have.any.keys("cidrIpv4", "cidrIpv6", "prefixListId");
      expect(sg.inputs.ingress ?? []).to.deep.equal([]);
      const egress = find(T.egress, "t-cache-functions-redis-out");
      expect(egress.inputs).to.include({
        securityGroupId: "sg-functions",
        fromPort: 6379,
        toPort: 6379,
        referencedSecurityGroupId: sg.id,
      });
    });

    it("uses the primary endpoint over TLS, or the configuration endpoint in cluster mode", async () => {
      expect(await promiseOf(single.endpoint)).to.match(/^rediss:\/\/master\.[^:]+:6379$/);
      expect(single.clusterMode).to.equal(false);
      expect(await promiseOf(cluster.endpoint)).to.match(/^rediss:\/\/clustercfg\.[^:]+:6379$/);
      expect(cluster.clusterMode).to.equal(true);
      expect(find(T.replicationGroup, "t-cluster-redis").inputs).to.include({
        clusterMode: "enabled",
        numNodeGroups: 2,
        replicasPerNodeGroup: 1,
        engine: "valkey",
        transitEncryptionEnabled: true,
        atRestEncryptionEnabled: true,
      });
    });

    it("runs on a parameter group of its own with noeviction, so a full cache never evicts a session record", () => {
      const params = find(T.parameterGroup, "t-cache-params");
      expect(params.inputs.family).to.equal("redis7");
      expect(params.inputs.parameters).to.deep.equal([{ name: "maxmemory-policy", value: "noeviction" }]);
      expect(find(T.replicationGroup, "t-cache-redis").inputs.parameterGroupName).to.equal(params.state.name);
      const clustered = find(T.parameterGroup, "t-cluster-params");
      expect(clustered.inputs.family).to.equal("valkey8");
      expect(clustered.inputs.parameters).to.deep.include({ name: "cluster-enabled", value: "yes" });
      expect(clustered.inputs.parameters).to.deep.include({ name: "maxmemory-policy", value: "noeviction" });
    });

    it("refuses to be built without the functions' security group", () => {
      expect(
        () => new Cache("t-bad", { vpcId: "vpc-1", subnetIds: ["s"], clientSecurityGroupId: "" }),
      ).to.throw(/clientSecurityGroupId/);
    });
  });
});
