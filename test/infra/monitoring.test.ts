import { expect } from "chai";
import {
  alarmSpecs,
  alarmThresholds,
  albNameFromDnsName,
  APP_METRICS,
  checkSubscriptions,
  dashboardBody,
  DEFAULT_THRESHOLDS,
  elbArnSuffix,
  expectedNatGateways,
  Monitoring,
  type WatchedResources,
} from "../../infra/monitoring";
import { find, installMocks, ofType, promiseOf, settle, T, type Recorded } from "./mocks";

const WATCHED: WatchedResources = {
  functions: [
    { name: "create-session", functionName: "api-fn-create-session-1a2b3c" },
    { name: "sweep-sessions", functionName: "api-fn-sweep-sessions-4d5e6f" },
  ],
  apiId: "a1b2c3d4e5",
  cacheNodeIds: ["cache-redis-abc-001", "cache-redis-abc-002"],
  natGatewayIds: ["nat-0123456789abcdef0"],
  alb: {
    loadBalancer: "app/connect-alb-123/50dc6c495c0c9188",
    targetGroup: "targetgroup/connect-proxy/6d0ecf831eec9f09",
  },
};

describe("infra/monitoring", () => {
  describe("thresholds and inputs", () => {
    it("takes the defaults, overrides by key, and refuses unknown keys and bad numbers", () => {
      expect(alarmThresholds()).to.deep.equal(DEFAULT_THRESHOLDS);
      expect(alarmThresholds({ api5xxPercent: "2", functionErrors: 3 })).to.include({
        api5xxPercent: 2,
        functionErrors: 3,
        cacheMemoryPercent: DEFAULT_THRESHOLDS.cacheMemoryPercent,
      });
      expect(() => alarmThresholds({ apiErrors: 1 })).to.throw(/alarms\.apiErrors is not a threshold/);
      expect(() => alarmThresholds({ functionErrors: -1 })).to.throw(/alarms\.functionErrors/);
      expect(() => alarmThresholds({ cacheCpuPercent: 120 })).to.throw(/percentage/);
      expect(() => alarmThresholds({ albElb5xx: "many" })).to.throw(/alarms\.albElb5xx/);
    });

    it("accepts email, https and ARN subscriptions and refuses plain http or a malformed endpoint", () => {
      expect(() =>
        checkSubscriptions([
          { protocol: "email", endpoint: "ops@example.com" },
          { protocol: "https", endpoint: "https://hooks.example.com/alarm" },
          { protocol: "sqs", endpoint: "arn:aws:sqs:us-west-2:123456789012:alarms" },
        ]),
      ).to.not.throw();
      expect(() => checkSubscriptions([{ protocol: "http" as never, endpoint: "http://x" }])).to.throw(
        /protocol/,
      );
      expect(() => checkSubscriptions([{ protocol: "email", endpoint: "ops" }])).to.throw(/email address/);
      expect(() => checkSubscriptions([{ protocol: "https", endpoint: "http://x" }])).to.throw(/https:\/\//);
    });

    it("expects NAT gateways only in a VPC of its own, by strategy", () => {
      expect(expectedNatGateways({ existingVpc: true, strategy: "OnePerAz" })).to.equal(0);
      expect(expectedNatGateways({ existingVpc: false })).to.equal(1);
      expect(expectedNatGateways({ existingVpc: false, strategy: "None" })).to.equal(0);
      expect(
        expectedNatGateways({ existingVpc: false, strategy: "OnePerAz", availabilityZones: 3 }),
      ).to.equal(3);
    });

    it("finds the ALB's name in its DNS name and the dimension values in ELB ARNs", () => {
      expect(albNameFromDnsName("connect-alb-7f3a2b1-1234567890.us-west-2.elb.amazonaws.com")).to.equal(
        "connect-alb-7f3a2b1",
      );
      expect(albNameFromDnsName("internal-api-lb-99.us-east-1.elb.amazonaws.com")).to.equal("api-lb");
      expect(
        elbArnSuffix(
          "arn:aws:elasticloadbalancing:us-west-2:123456789012:loadbalancer/app/connect/50dc6c495c0c9188",
        ),
      ).to.equal("app/connect/50dc6c495c0c9188");
      expect(
        elbArnSuffix(
          "arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/proxy/6d0ecf831eec9f09",
        ),
      ).to.equal("targetgroup/proxy/6d0ecf831eec9f09");
      expect(() => elbArnSuffix("arn:aws:s3:::bucket")).to.throw(/not an Elastic Load Balancing ARN/);
    });
  });

  describe("alarmSpecs", () => {
    const specs = alarmSpecs(WATCHED, DEFAULT_THRESHOLDS);
    const byKey = (key: string) => {
      const spec = specs.find((s) => s.key === key);
      expect(spec, key).to.not.equal(undefined);
      return spec!;
    };

    it("watches errors and throttles of every function by its name", () => {
      for (const fn of WATCHED.functions) {
        expect(byKey(`fn-${fn.name}-errors`).metric).to.deep.include({
          namespace: "AWS/Lambda",
          metricName: "Errors",
          dimensions: { FunctionName: fn.functionName },
          statistic: "Sum",
        });
        expect(byKey(`fn-${fn.name}-throttles`).metric?.metricName).to.equal("Throttles");
      }
    });

    it("computes the API's 5xx rate from 5xx and Count of the API id, ignoring quiet windows", () => {
      const rate = byKey("api-5xx-rate");
      expect(rate.expression!.metrics).to.deep.equal({
        errors: { namespace: "AWS/ApiGateway", metricName: "5xx", dimensions: { ApiId: WATCHED.apiId } },
        requests: { namespace: "AWS/ApiGateway", metricName: "Count", dimensions: { ApiId: WATCHED.apiId } },
      });
      expect(rate.expression!.expression).to.equal("IF(requests >= 20, 100 * FILL(errors, 0) / requests, 0)");
      expect(rate.threshold).to.equal(5);
      expect(byKey("api-p99-latency").metric).to.deep.include({
        metricName: "Latency",
        extendedStatistic: "p99",
        dimensions: { ApiId: WATCHED.apiId },
      });
    });

    it("watches memory, evictions and engine CPU of every cache node by its cache cluster id", () => {
      for (const node of WATCHED.cacheNodeIds) {
        expect(byKey(`cache-${node}-memory`).metric).to.deep.include({
          metricName: "DatabaseMemoryUsagePercentage",
          dimensions: { CacheClusterId: node },
        });
        expect(byKey(`cache-${node}-evictions`).metric?.metricName).to.equal("Evictions");
        expect(byKey(`cache-${node}-cpu`).metric?.metricName).to.equal("EngineCPUUtilization");
      }
    });

    it("watches each NAT gateway's port allocation errors and the ALB's hosts and 5xx", () => {
      expect(byKey("nat-nat-0123456789abcdef0-port-allocation").metric?.dimensions).to.deep.equal({
        NatGatewayId: "nat-0123456789abcdef0",
      });
      expect(byKey("alb-unhealthy-hosts").metric?.dimensions).to.deep.equal({
        LoadBalancer: WATCHED.alb!.loadBalancer,
        TargetGroup: WATCHED.alb!.targetGroup,
      });
      expect(byKey("alb-elb-5xx").metric?.metricName).to.equal("HTTPCode_ELB_5XX_Count");
      expect(byKey("alb-target-5xx").metric?.metricName).to.equal("HTTPCode_Target_5XX_Count");
    });

    it("makes no NAT or ALB alarm when there is no NAT gateway or ALB of the stack's own", () => {
      const keys = alarmSpecs({ ...WATCHED, natGatewayIds: [], alb: undefined }, DEFAULT_THRESHOLDS).map(
        (s) => s.key,
      );
      expect(keys.filter((key) => key.startsWith("nat-") || key.startsWith("alb-"))).to.deep.equal([]);
      expect(keys).to.have.length(WATCHED.functions.length * 2 + 2 + WATCHED.cacheNodeIds.length * 3);
    });
  });

  describe("dashboardBody", () => {
    it("graphs the alarms' signals and every handler metric, and lists the alarms", () => {
      const body = dashboardBody({
        ...WATCHED,
        region: "us-west-2",
        alarmArns: ["arn:aws:cloudwatch:x:1:alarm:a"],
      });
      const text = JSON.stringify(body);
      for (const signal of [
        "Errors",
        "Throttles",
        '"5xx"',
        '"Latency"',
        "DatabaseMemoryUsagePercentage",
        "Evictions",
        "EngineCPUUtilization",
        "ErrorPortAllocation",
        "UnHealthyHostCount",
        "HTTPCode_ELB_5XX_Count",
        "HTTPCode_Target_5XX_Count",
        ...APP_METRICS,
      ]) {
        expect(text, signal).to.include(signal);
      }
      for (const fn of WATCHED.functions) expect(text).to.include(fn.functionName);
      expect(text).to.include('Namespace=\\"WallCrawler\\"');
      const alarmWidget = body.widgets.find((w) => w.type === "alarm") as {
        properties: { alarms: string[] };
      };
      expect(alarmWidget.properties.alarms).to.deep.equal(["arn:aws:cloudwatch:x:1:alarm:a"]);
      for (const widget of body.widgets.filter((w) => w.type === "metric")) {
        expect((widget.properties as { region: string }).region).to.equal("us-west-2");
      }
    });
  });

  describe("the Monitoring component", function () {
    this.timeout(30000);
    let monitoring: Monitoring;
    const mine = (type: string): Recorded[] => ofType(type, "t-mon-");

    before(async () => {
      await installMocks();
      monitoring = new Monitoring("t-mon", {
        functions: WATCHED.functions,
        apiId: WATCHED.apiId,
        cacheNodeIds: WATCHED.cacheNodeIds,
        natGatewayIds: WATCHED.natGatewayIds,
        alb: {
          loadBalancerArnSuffix: WATCHED.alb!.loadBalancer,
          targetGroupArnSuffix: WATCHED.alb!.targetGroup,
        },
        subscriptions: [{ protocol: "email", endpoint: "ops@example.com" }],
        thresholds: { apiP99LatencyMs: 1500 },
      });
      await promiseOf(monitoring.dashboardName);
      await settle();
    });

    it("makes one alarm per spec, each sending to the topic when it fires and when it recovers", () => {
      const topic = find(T.topic, "t-mon-alarms");
      const alarms = mine(T.alarm);
      expect(alarms).to.have.length(alarmSpecs(WATCHED, DEFAULT_THRESHOLDS).length);
      for (const alarm of alarms) {
        expect(alarm.inputs.alarmActions, alarm.name).to.deep.equal([topic.state.arn]);
        expect(alarm.inputs.okActions, alarm.name).to.deep.equal([topic.state.arn]);
        expect(alarm.inputs.comparisonOperator).to.equal("GreaterThanOrEqualToThreshold");
        expect(alarm.inputs.alarmDescription, alarm.name).to.match(/docs\/operate\.md#/);
      }
    });

    it("gives each alarm the dimensions of the resource it watches", () => {
      const alarm = (key: string) => find(T.alarm, `t-mon-${key}`).inputs;
      expect(alarm("fn-create-session-errors")).to.deep.include({
        namespace: "AWS/Lambda",
        metricName: "Errors",
        dimensions: { FunctionName: "api-fn-create-session-1a2b3c" },
        statistic: "Sum",
      });
      expect(alarm("cache-node2-cpu").dimensions).to.deep.equal({
        CacheClusterId: "cache-redis-abc-002",
      });
      expect(alarm("nat-nat1-port-allocation").dimensions).to.deep.equal({
        NatGatewayId: "nat-0123456789abcdef0",
      });
      expect(alarm("alb-unhealthy-hosts").dimensions).to.deep.equal({
        LoadBalancer: WATCHED.alb!.loadBalancer,
        TargetGroup: WATCHED.alb!.targetGroup,
      });
      expect(alarm("api-p99-latency")).to.deep.include({ extendedStatistic: "p99", threshold: 1500 });
      const rate = alarm("api-5xx-rate");
      expect(rate.metricQueries.map((q: { id: string }) => q.id)).to.deep.equal([
        "errors",
        "requests",
        "result",
      ]);
      expect(rate.metricQueries[0].metric).to.deep.include({
        metricName: "5xx",
        dimensions: { ApiId: WATCHED.apiId },
        stat: "Sum",
      });
      expect(rate.metricQueries[2]).to.include({ returnData: true });
    });

    it("subscribes the configured endpoint to the topic and exports the topic's ARN", async () => {
      const topic = find(T.topic, "t-mon-alarms");
      const [subscription] = mine(T.subscription);
      expect(subscription.inputs).to.include({
        topic: topic.state.arn,
        protocol: "email",
        endpoint: "ops@example.com",
      });
      expect(await promiseOf(monitoring.topicArn)).to.equal(topic.state.arn);
    });

    it("builds a dashboard whose body names the watched resources and the handlers' metrics", () => {
      const [dashboard] = mine(T.dashboard);
      const body = JSON.parse(dashboard.inputs.dashboardBody);
      const text = JSON.stringify(body);
      expect(text).to.include("api-fn-create-session-1a2b3c").and.include("cache-redis-abc-001");
      expect(text).to.include("SessionsCreated").and.include("RedisErrors");
      const alarmArns = mine(T.alarm).map((a) => a.state.arn);
      const alarmWidget = body.widgets.find((w: { type: string }) => w.type === "alarm");
      expect(alarmWidget.properties.alarms).to.have.members(alarmArns);
    });

    it("refuses to be built without a cache node or with an unknown threshold", () => {
      const base = {
        functions: WATCHED.functions,
        apiId: "x",
        cacheNodeIds: ["n-001"],
        natGatewayIds: [],
      };
      expect(() => new Monitoring("t-bad1", { ...base, cacheNodeIds: [] })).to.throw(/cacheNodeIds/);
      expect(() => new Monitoring("t-bad2", { ...base, thresholds: { nope: 1 } })).to.throw(/alarms\.nope/);
    });
  });
});
