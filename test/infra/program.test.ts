import { expect } from "chai";
import { ROUTES } from "../../handlers/routes";
import { EXCLUDED_PACKAGES, LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME, SWEEP_NAME } from "../../infra/functions";
import {
  ACCOUNT,
  generatedSecrets,
  isSecretInput,
  plain,
  promiseOf,
  recorded,
  REGION,
  T,
  unknownCalls,
  type Recorded,
} from "./mocks";
import { DEV_CONFIG, loadProgram, programKey } from "./program";

/** The program's resources (component tests name theirs `t-...`). */
const mine = (type: string): Recorded[] =>
  recorded.filter((r) => r.type === type && !r.name.startsWith("t-"));
const one = (type: string): Recorded => {
  const found = mine(type);
  expect(found, `exactly one ${type}`).to.have.length(1);
  return found[0];
};

/** Inputs as JSON, without the code archive (checked on its own in package.test.ts). */
function inputsJson(resource: Recorded): string {
  return JSON.stringify(resource.inputs, (key, value) => (key === "code" ? undefined : value));
}

describe("the whole program (dev stack config, under mocks)", function () {
  this.timeout(240_000); // loading the program waits for settle() (see mocks.ts)
  let program: Awaited<ReturnType<typeof loadProgram>>;

  before(async () => {
    program = await loadProgram();
  });

  it("loads with Pulumi.dev.yaml and asks the mocks for nothing they do not know", () => {
    expect(DEV_CONFIG["aws:region"]).to.equal("us-west-2");
    expect(unknownCalls).to.deep.equal([]);
  });

  it("exports the API URL, connect host, Redis endpoint, secret ARNs, VPC, functions' group and target group", async () => {
    const url = await promiseOf(program.apiUrl);
    expect(url).to.match(/^https:\/\/[a-z0-9]+\.execute-api\.us-west-2\.amazonaws\.com$/);
    expect(await promiseOf(program.connectHost)).to.match(/\.us-west-2\.elb\.amazonaws\.com$/);
    expect(program.connectScheme).to.equal("ws");
    expect(await promiseOf(program.redisEndpoint)).to.match(
      /^rediss:\/\/master\..+\.cache\.amazonaws\.com:6379$/,
    );
    for (const arn of [program.apiKeysSecretArn, program.tokenKeysSecretArn, program.redisAuthSecretArn]) {
      expect(await promiseOf(arn)).to.match(
        new RegExp(`^arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:`),
      );
    }
    expect(await promiseOf(program.vpcId)).to.match(/^vpc-/);
    expect(await promiseOf(program.functionsSecurityGroupId)).to.match(/^sg-/);
    expect(await promiseOf(program.cacheSecurityGroupId)).to.match(/^sg-/);
    expect(await promiseOf(program.proxyTargetGroupArn!)).to.match(/:targetgroup\//);
    expect(await promiseOf(program.currentTokenKeyId)).to.equal("k1");
  });

  it("makes one function per route plus the fallback and the sweep, each with its own log group", () => {
    const functions = mine(T.lambda);
    expect(functions).to.have.length(ROUTES.length + 2);
    expect(mine(T.logGroup)).to.have.length(ROUTES.length + 3); // + the API's access logs
    for (const fn of functions) {
      const group = mine(T.logGroup).find((g) => g.state.name === fn.inputs.loggingConfig?.logGroup);
      expect(group, `${fn.name} logs to its own group`).to.not.equal(undefined);
    }
  });

  it("makes one dependency layer for the functions' runtime and architecture, attached to every function", async () => {
    const layer = one(T.layer);
    expect(layer.inputs.compatibleRuntimes).to.deep.equal([LAMBDA_RUNTIME]);
    expect(layer.inputs.compatibleArchitectures).to.deep.equal([LAMBDA_ARCHITECTURE]);
    expect(await promiseOf(program.dependencyLayerArn)).to.equal(layer.state.arn);
    for (const fn of mine(T.lambda)) expect(fn.inputs.layers, fn.name).to.deep.equal([layer.state.arn]);
  });

  it("pins every function's runtime and architecture and uses the dev memory and timeout", () => {
    for (const fn of mine(T.lambda)) {
      expect(fn.inputs.runtime, fn.name).to.equal(LAMBDA_RUNTIME);
      expect(fn.inputs.architectures, fn.name).to.deep.equal([LAMBDA_ARCHITECTURE]);
      expect(fn.inputs.memorySize, fn.name).to.equal(Number(DEV_CONFIG["wallcrawler-api:lambdaMemoryMb"]));
      // A create may wait for a slot (Prefer: wait): its function gets the longest timeout.
      const expected = fn.name.endsWith("-create-session")
        ? 25
        : Number(DEV_CONFIG["wallcrawler-api:lambdaTimeoutSeconds"]);
      expect(fn.inputs.timeout, fn.name).to.equal(expected);
      expect(fn.inputs.timeout, "well under API Gateway's 30 s").to.be.at.most(25);
    }
  });

  it("runs every function in the private subnets with the functions' security group only", async () => {
    const privateSubnets = await promiseOf(program.privateSubnetIds);
    const functionsSg = await promiseOf(program.functionsSecurityGroupId);
    expect(privateSubnets).to.have.length(2);
    for (const fn of mine(T.lambda)) {
      expect(fn.inputs.vpcConfig?.subnetIds, fn.name).to.deep.equal(privateSubnets);
      expect(fn.inputs.vpcConfig?.securityGroupIds, fn.name).to.deep.equal([functionsSg]);
    }
  });

  it("gives every function the env vars the handlers read, pointing at this stack's resources", async () => {
    const expected = {
      REDIS_ENDPOINT: await promiseOf(program.redisEndpoint),
      REDIS_CLUSTER: "false",
      JWE_SECRET_ARN: await promiseOf(program.tokenKeysSecretArn),
      API_KEYS_SECRET_ARN: await promiseOf(program.apiKeysSecretArn),
      REDIS_AUTH_SECRET_ARN: await promiseOf(program.redisAuthSecretArn),
      ALB_DNS_NAME: await promiseOf(program.connectHost),
      CONNECT_SCHEME: "ws",
      OBJECT_STORE: `s3://${await promiseOf(program.objectsBucketName)}`,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    };
    for (const fn of mine(T.lambda)) {
      expect(fn.inputs.environment?.variables, fn.name).to.include(expected);
    }
  });

  it("puts no secret value in any env var, and secret values only into the secret versions and the cache's AUTH", () => {
    const secrets = [...generatedSecrets, programKey.key];
    expect(generatedSecrets.length).to.be.greaterThan(0);
    for (const fn of mine(T.lambda)) {
      for (const [name, value] of Object.entries(fn.inputs.environment.variables as Record<string, string>)) {
        for (const secret of secrets) expect(value, `${fn.name} ${name}`).to.not.include(secret);
      }
    }
    const allowed = new Set<string>([T.secretVersion, T.replicationGroup, T.password, T.bytes]);
    for (const resource of recorded.filter((r) => !allowed.has(r.type))) {
      const text = inputsJson(resource);
      for (const secret of secrets) expect(text, `${resource.type} ${resource.name}`).to.not.include(secret);
    }
    // The API key itself is nowhere, not even in the API-key secret (only its hash).
    for (const version of mine(T.secretVersion)) expect(inputsJson(version)).to.not.include(programKey.key);
  });

  it("serializes no secret into any function's code", async () => {
    for (const fn of mine(T.lambda)) {
      const assets = await fn.inputs.code.assets;
      const text: string = await assets["__index.js"].text;
      expect(text.length, fn.name).to.be.greaterThan(1000);
      for (const secret of [...generatedSecrets, programKey.key])
        expect(text, fn.name).to.not.include(secret);
      expect(fn.inputs.code.isSecret ?? false, fn.name).to.equal(false);
    }
  });

  it("gives all functions one role whose inline policy reads exactly the three secret ARNs", async () => {
    const role = one(T.role);
    expect(JSON.parse(role.inputs.assumeRolePolicy).Statement).to.deep.equal([
      { Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" }, Action: "sts:AssumeRole" },
    ]);
    for (const fn of mine(T.lambda)) expect(fn.inputs.role, fn.name).to.equal(role.state.arn);
    expect(mine("aws:iam/rolePolicyAttachment:RolePolicyAttachment"), "no managed policies").to.have.length(
      0,
    );
    const policy = JSON.parse(one(T.rolePolicy).inputs.policy);
    const secretArns = [
      await promiseOf(program.tokenKeysSecretArn),
      await promiseOf(program.apiKeysSecretArn),
      await promiseOf(program.redisAuthSecretArn),
    ];
    const reads = policy.Statement.filter((s: { Action: string[] }) =>
      s.Action.some((a) => a.startsWith("secretsmanager:")),
    );
    expect(reads).to.have.length(1);
    expect(reads[0].Action).to.deep.equal(["secretsmanager:GetSecretValue"]);
    expect([...reads[0].Resource].sort()).to.deep.equal([...secretArns].sort());
    const objects = policy.Statement.find((s: { Sid: string }) => s.Sid === "UseObjectStore");
    const bucketArn = await promiseOf(program.objectsBucketArn);
    expect(objects.Resource).to.deep.equal([
      `${bucketArn}/extensions/*`,
      `${bucketArn}/contexts/*`,
      `${bucketArn}/sessions/*`,
    ]);
    const logs = policy.Statement.find((s: { Sid: string }) => s.Sid === "WriteOwnLogs");
    expect(logs.Resource).to.have.length(mine(T.lambda).length);
    for (const resource of logs.Resource) expect(resource).to.match(/^arn:aws:logs:.+:log-group:.+:\*$/);
    for (const statement of policy.Statement) {
      expect(statement.Effect).to.equal("Allow");
      for (const action of statement.Action) expect(action, "no wildcard actions").to.not.include("*");
    }
  });

  it("keeps logs for the configured retention", () => {
    for (const group of mine(T.logGroup)) {
      expect(group.inputs.retentionInDays, group.name).to.equal(
        Number(DEV_CONFIG["wallcrawler-api:logRetentionDays"]),
      );
    }
  });

  it("encrypts the cache in transit and at rest and sets the AUTH token from the generated password", () => {
    const group = one(T.replicationGroup);
    expect(group.inputs.transitEncryptionEnabled).to.equal(true);
    expect(group.inputs.atRestEncryptionEnabled).to.equal(true);
    const password = one(T.password);
    expect(isSecretInput(group.inputs.authToken), "AUTH token input is marked secret").to.equal(true);
    expect(plain(group.inputs.authToken)).to.equal(password.state.result);
    expect(group.inputs.numCacheClusters).to.equal(1);
    expect(group.inputs.automaticFailoverEnabled).to.equal(false);
    expect(group.inputs.nodeType).to.equal("cache.t4g.micro");
    const authVersion = mine(T.secretVersion).find(
      (v) => plain(v.inputs.secretString) === password.state.result,
    );
    expect(authVersion, "AUTH token stored in Secrets Manager").to.not.equal(undefined);
  });

  it("admits Redis into the cache's group only from the functions' group", async () => {
    const cacheSg = await promiseOf(program.cacheSecurityGroupId);
    const functionsSg = await promiseOf(program.functionsSecurityGroupId);
    const ingress = mine(T.ingress).filter((rule) => rule.inputs.securityGroupId === cacheSg);
    expect(ingress).to.have.length(1);
    expect(ingress[0].inputs).to.include({
      fromPort: 6379,
      toPort: 6379,
      ipProtocol: "tcp",
      referencedSecurityGroupId: functionsSg,
    });
    expect(ingress[0].inputs.cidrIpv4).to.equal(undefined);
    expect(mine(T.sg).find((sg) => sg.id === cacheSg)?.inputs.ingress ?? [], "no inline rules").to.deep.equal(
      [],
    );
    // Nothing admits traffic into the functions' group.
    expect(mine(T.ingress).filter((rule) => rule.inputs.securityGroupId === functionsSg)).to.deep.equal([]);
  });

  it("routes every handler and $default through a payload-2.0 Lambda integration", () => {
    const routes = mine(T.route);
    const keys = routes.map((route) => route.inputs.routeKey).sort();
    expect(keys).to.deep.equal([...ROUTES.map((r) => `${r.method} ${r.path}`), "$default"].sort());
    const integrations = mine(T.integration);
    const functionArns = mine(T.lambda).map((fn) => fn.state.arn);
    for (const route of routes) {
      const integration = integrations.find((i) => `integrations/${i.id}` === route.inputs.target);
      expect(integration, route.inputs.routeKey).to.not.equal(undefined);
      expect(integration!.inputs).to.include({ integrationType: "AWS_PROXY", payloadFormatVersion: "2.0" });
      expect(functionArns).to.include(integration!.inputs.integrationUri);
    }
  });

  it("runs the timeout sweep every minute from an EventBridge schedule that alone may invoke it", () => {
    const sweep = mine(T.lambda).find((fn) => fn.name === `api-fn-${SWEEP_NAME}`)!;
    expect(sweep, "the sweep function").to.not.equal(undefined);
    const [rule] = mine(T.eventRule);
    expect(rule.inputs.scheduleExpression).to.equal("rate(1 minute)");
    const [target] = mine(T.eventTarget);
    expect(target.inputs).to.include({ rule: rule.state.name, arn: sweep.state.arn });
    const invoke = mine(T.permission).filter((p) => p.inputs.principal === "events.amazonaws.com");
    expect(invoke).to.have.length(1);
    expect(invoke[0].inputs).to.include({
      function: sweep.state.name,
      action: "lambda:InvokeFunction",
      sourceArn: rule.state.arn,
    });
    // Nothing routes to it: it is not behind the API.
    expect(mine(T.integration).map((i) => i.inputs.integrationUri)).to.not.include(sweep.state.arn);
  });

  it("lets only this API invoke each function, on its own route", () => {
    const api = one(T.api);
    const permissions = mine(T.permission).filter((p) => p.inputs.principal !== "events.amazonaws.com");
    expect(permissions).to.have.length(ROUTES.length + 1);
    for (const permission of permissions) {
      expect(permission.inputs.principal).to.equal("apigateway.amazonaws.com");
      expect(permission.inputs.action).to.equal("lambda:InvokeFunction");
      expect(
        permission.inputs.sourceArn.startsWith(`${api.state.executionArn}/*/`),
        permission.name,
      ).to.equal(true);
    }
  });

  it("auto-deploys the $default stage with throttling and JSON access logs", () => {
    const stage = one(T.stage);
    expect(stage.inputs).to.include({ name: "$default", autoDeploy: true });
    expect(stage.inputs.defaultRouteSettings).to.include({
      throttlingRateLimit: Number(DEV_CONFIG["wallcrawler-api:throttleRateLimit"]),
      throttlingBurstLimit: Number(DEV_CONFIG["wallcrawler-api:throttleBurstLimit"]),
    });
    const accessLogs = mine(T.logGroup).find(
      (g) => g.state.arn === stage.inputs.accessLogSettings.destinationArn,
    );
    expect(accessLogs, "access logs go to a log group of the stack").to.not.equal(undefined);
    const format = JSON.parse(stage.inputs.accessLogSettings.format);
    expect(format).to.include({
      requestId: "$context.requestId",
      status: "$context.status",
      routeKey: "$context.routeKey",
    });
  });

  it("fronts the Proxy with an internet-facing ALB on port 80 (no certificate on dev) and a health-checked target group", () => {
    const lb = one(T.lb);
    expect(lb.inputs.internal).to.equal(false);
    expect(lb.inputs.loadBalancerType).to.equal("application");
    const listener = one(T.listener);
    expect(listener.inputs).to.include({ port: 80, protocol: "HTTP" });
    const targetGroup = one(T.targetGroup);
    expect(listener.inputs.defaultActions[0]).to.include({
      type: "forward",
      targetGroupArn: targetGroup.state.arn,
    });
    expect(targetGroup.inputs.healthCheck).to.include({ enabled: true, path: "/health", matcher: "200" });
    expect(targetGroup.inputs).to.include({ port: 8080, targetType: "ip" });
  });

  it("leaves the AWS SDK clients the runtime ships (S3, the presigner) out of every code package", async () => {
    for (const fn of mine(T.lambda)) {
      const assets = await fn.inputs.code.assets;
      for (const pkg of EXCLUDED_PACKAGES)
        expect(Object.keys(assets), fn.name).to.not.include(`node_modules/${pkg}`);
    }
  });

  it("makes the expected set of resources for a dev stack", () => {
    const custom = recorded.filter(
      (r) => !r.name.startsWith("t-") && !r.type.startsWith("wallcrawler:") && !r.type.startsWith("pulumi:"),
    );
    // Per function: the function, its log group, integration, route and invoke permission. Fixed: VPC
    // (awsx; its subnets, routes and NAT are not visible under mocks), 3 security groups with 6
    // rules, cache (password, secret + version, subnet group, replication group), 2 secrets + versions
    // + 1 random key, role + policy, API + stage + access logs, ALB + listener + target group,
    // object store bucket + public access block, ownership, encryption, lifecycle and policy, and
    // the cache's parameter group. The timeout sweep: its function, log group, schedule rule,
    // target and invoke permission.
    // Monitoring: the alarm topic, the dashboard, two alarms per function, two for the API,
    // three for the one cache node, one for the NAT gateway and three for the ALB. The functions'
    // shared-dependencies layer: one layer version.
    const functions = ROUTES.length + 2;
    expect(custom.length).to.equal(
      35 + 5 * (ROUTES.length + 1) + 5 + 2 + (2 * functions + 2 + 3 + 1 + 3) + 1,
    );
  });

  it("exports the token issuer and audience, the cluster flag, every log group and the alarm topic", async () => {
    expect(program.tokenIssuer).to.equal("wallcrawler-api");
    expect(program.tokenAudience).to.equal("wallcrawler-proxy");
    expect(program.cacheClusterMode).to.equal(false);
    const groups = mine(T.logGroup).map((g) => g.state.name);
    const exported = await Promise.all(Object.values(program.functionLogGroupNames).map(promiseOf));
    expect(Object.keys(program.functionLogGroupNames)).to.include.members([
      "create-session",
      "fallback",
      SWEEP_NAME,
    ]);
    expect(exported).to.have.length(ROUTES.length + 2);
    for (const name of [...exported, await promiseOf(program.apiAccessLogGroupName)]) {
      expect(groups).to.include(name);
    }
    expect(await promiseOf(program.alarmTopicArn)).to.equal(one(T.topic).state.arn);
    expect(await promiseOf(program.objectsBucketName)).to.equal(one(T.bucket).state.bucket);
  });

  it("logs JSON at INFO and traces every function", () => {
    for (const fn of mine(T.lambda)) {
      expect(fn.inputs.loggingConfig, fn.name).to.include({
        logFormat: "JSON",
        applicationLogLevel: "INFO",
        systemLogLevel: "INFO",
      });
      expect(fn.inputs.tracingConfig, fn.name).to.deep.equal({ mode: "Active" });
      expect(fn.inputs.environment.variables, fn.name).to.include({
        POWERTOOLS_METRICS_NAMESPACE: "WallCrawler",
        POWERTOOLS_LOG_LEVEL: "INFO",
      });
    }
  });

  it("alarms on this stack's functions, API, cache node, NAT gateway and ALB, each to the topic", () => {
    const topicArn = one(T.topic).state.arn;
    const alarms = mine(T.alarm);
    for (const alarm of alarms) {
      expect(alarm.inputs.alarmActions, alarm.name).to.deep.equal([topicArn]);
      expect(alarm.inputs.okActions, alarm.name).to.deep.equal([topicArn]);
    }
    const watching = (metricName: string) =>
      alarms.filter((a) => a.inputs.metricName === metricName).map((a) => a.inputs.dimensions);
    const functionNames = mine(T.lambda).map((fn) => ({ FunctionName: fn.state.name }));
    expect(watching("Errors")).to.have.deep.members(functionNames);
    expect(watching("Throttles")).to.have.deep.members(functionNames);
    const apiId = one(T.api).id;
    expect(watching("Latency")).to.deep.equal([{ ApiId: apiId }]);
    const rate = alarms.find((a) => a.inputs.metricQueries)!;
    expect(rate.inputs.metricQueries[0].metric.dimensions).to.deep.equal({ ApiId: apiId });
    const node = { CacheClusterId: `${one(T.replicationGroup).id}-001` };
    for (const metric of ["DatabaseMemoryUsagePercentage", "Evictions", "EngineCPUUtilization"]) {
      expect(watching(metric), metric).to.deep.equal([node]);
    }
    expect(watching("ErrorPortAllocation")).to.have.length(1);
    expect(watching("ErrorPortAllocation")[0].NatGatewayId).to.match(/^nat-/);
    const lb = one(T.lb).state.arnSuffix;
    const tg = one(T.targetGroup).state.arnSuffix;
    expect(watching("UnHealthyHostCount")).to.deep.equal([{ LoadBalancer: lb, TargetGroup: tg }]);
    expect(watching("HTTPCode_ELB_5XX_Count")).to.deep.equal([{ LoadBalancer: lb }]);
    expect(watching("HTTPCode_Target_5XX_Count")).to.deep.equal([{ LoadBalancer: lb }]);
    const body = JSON.parse(one(T.dashboard).inputs.dashboardBody);
    expect(JSON.stringify(body))
      .to.include(apiId)
      .and.include(node.CacheClusterId)
      .and.include("SessionsCreated");
  });
});
