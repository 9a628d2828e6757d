import { expect } from "chai";
import { ROUTES } from "../../handlers/routes";
import {
  checkHandlerSettings,
  EXCLUDED_PACKAGES,
  excludedPackages,
  fallbackHandlerFactory,
  FALLBACK_NAME,
  functionEnvironment,
  functionPolicyDocument,
  Functions,
  LAMBDA_ARCHITECTURE,
  LAMBDA_RUNTIME,
  MAX_TIMEOUT_SECONDS,
  lambdaLoggingConfig,
  resolveLogLevel,
  routeTable,
  SWEEP_NAME,
} from "../../infra/functions";
import { apiEvent, ctx } from "../support/fixtures";
import { find, installMocks, ofType, promiseOf, recorded, settle, T } from "./mocks";

const ARN = (name: string) => `arn:aws:secretsmanager:us-west-2:123456789012:secret:${name}-AbCdEf`;
const ENV_INPUT = {
  redisEndpoint: "rediss://master.x.cache.amazonaws.com:6379",
  redisCluster: false,
  redisAuthSecretArn: ARN("auth"),
  tokenKeysSecretArn: ARN("tokens"),
  apiKeysSecretArn: ARN("keys"),
  connectHost: "connect.example.com",
  connectScheme: "wss" as const,
  bucketName: "wc-objects-123",
};

describe("infra/functions", () => {
  describe("functionEnvironment", () => {
    it("holds endpoints and secret ARNs under the names lib/config.ts reads", () => {
      expect(functionEnvironment(ENV_INPUT)).to.include({
        REDIS_ENDPOINT: ENV_INPUT.redisEndpoint,
        OBJECT_STORE: "s3://wc-objects-123",
        REDIS_CLUSTER: "false",
        REDIS_AUTH_SECRET_ARN: ARN("auth"),
        JWE_SECRET_ARN: ARN("tokens"),
        API_KEYS_SECRET_ARN: ARN("keys"),
        ALB_DNS_NAME: "connect.example.com",
        CONNECT_SCHEME: "wss",
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
      });
      expect(functionEnvironment({ ...ENV_INPUT, redisCluster: true }).REDIS_CLUSTER).to.equal("true");
    });

    it("passes known handler settings and refuses unknown or malformed ones", () => {
      expect(
        functionEnvironment({ ...ENV_INPUT, settings: { DEFAULT_CONCURRENCY: "5" } }).DEFAULT_CONCURRENCY,
      ).to.equal("5");
      expect(() => functionEnvironment({ ...ENV_INPUT, settings: { REDIS_PASSWORD: "x" } })).to.throw(
        /REDIS_PASSWORD/,
      );
      expect(() => functionEnvironment({ ...ENV_INPUT, settings: { DEFAULT_CONCURRENCY: "many" } })).to.throw(
        /DEFAULT_CONCURRENCY/,
      );
      expect(() => functionEnvironment({ ...ENV_INPUT, connectHost: "https://x/" })).to.throw(/ALB_DNS_NAME/);
    });

    it("names the metrics namespace and service and logs at the stack's level, INFO by default", () => {
      expect(functionEnvironment(ENV_INPUT)).to.include({
        POWERTOOLS_SERVICE_NAME: "wallcrawler-api",
        POWERTOOLS_METRICS_NAMESPACE: "WallCrawler",
        POWERTOOLS_LOG_LEVEL: "INFO",
        POWERTOOLS_TRACER_CAPTURE_RESPONSE: "false",
      });
      expect(functionEnvironment({ ...ENV_INPUT, logLevel: "debug" }).POWERTOOLS_LOG_LEVEL).to.equal("DEBUG");
    });

    it("cannot be told to override the secret ARNs through settings", () => {
      expect(() =>
        functionEnvironment({ ...ENV_INPUT, settings: { JWE_SECRET_ARN: "file:/tmp/x" } }),
      ).to.throw(/JWE_SECRET_ARN/);
    });
  });

  describe("checkHandlerSettings and the log level", () => {
    it("checks names and values with the handlers' own loader, without any deployed value", () => {
      const config = checkHandlerSettings({ DEFAULT_CONCURRENCY: "7", TOKEN_ISSUER: "acme-api" });
      expect(config.defaultConcurrency).to.equal(7);
      expect(config.tokenIssuer).to.equal("acme-api");
      expect(checkHandlerSettings().tokenAudience).to.equal("wallcrawler-proxy");
      expect(() => checkHandlerSettings({ DEFAULT_CONCURRENCY: "many" })).to.throw(
        /handlerSettings: .*DEFAULT_CONCURRENCY/,
      );
      expect(() => checkHandlerSettings({ REDIS_ENDPOINT: "redis://elsewhere:6379" })).to.throw(
        /setting REDIS_ENDPOINT is not one the handlers read/,
      );
      expect(() => checkHandlerSettings({ MAX_BODY_BYTES: 5 as unknown as string })).to.throw(
        /must be a string/,
      );
    });

    it("takes logLevel, or the older POWERTOOLS_LOG_LEVEL setting, and refuses a conflict or an unknown level", () => {
      expect(resolveLogLevel()).to.equal("INFO");
      expect(resolveLogLevel("warn")).to.equal("WARN");
      expect(resolveLogLevel(undefined, { POWERTOOLS_LOG_LEVEL: "debug" })).to.equal("DEBUG");
      expect(resolveLogLevel("DEBUG", { POWERTOOLS_LOG_LEVEL: "debug" })).to.equal("DEBUG");
      expect(() => resolveLogLevel("INFO", { POWERTOOLS_LOG_LEVEL: "DEBUG" })).to.throw(/logLevel is INFO/);
      expect(() => resolveLogLevel("SILENT")).to.throw(/logLevel must be one of/);
      expect(() => checkHandlerSettings({}, "LOUD")).to.throw(/logLevel/);
    });

    it("logs JSON with Lambda's filter at the same level and platform lines at INFO unless asked otherwise", () => {
      expect(lambdaLoggingConfig("INFO")).to.deep.equal({
        logFormat: "JSON",
        applicationLogLevel: "INFO",
        systemLogLevel: "INFO",
      });
      expect(lambdaLoggingConfig("TRACE").systemLogLevel).to.equal("DEBUG");
      expect(lambdaLoggingConfig("ERROR")).to.include({
        applicationLogLevel: "ERROR",
        systemLogLevel: "WARN",
      });
    });
  });

  describe("functionPolicyDocument", () => {
    const logs = [
      "arn:aws:logs:us-west-2:123456789012:log-group:a",
      "arn:aws:logs:us-west-2:123456789012:log-group:b",
    ];

    it("reads exactly the given secrets, writes only the given log groups and traces, and manages VPC interfaces", () => {
      const doc = functionPolicyDocument([ARN("a"), ARN("b"), ARN("a")], logs);
      expect(doc.Statement.map((s) => s.Sid)).to.deep.equal([
        "ReadApiSecrets",
        "WriteOwnLogs",
        "WriteTraces",
        "VpcNetworkInterfaces",
      ]);
      expect(doc.Statement[0]).to.deep.equal({
        Sid: "ReadApiSecrets",
        Effect: "Allow",
        Action: ["secretsmanager:GetSecretValue"],
        Resource: [ARN("a"), ARN("b")],
      });
      expect(doc.Statement[1].Resource).to.deep.equal(logs.map((arn) => `${arn}:*`));
      expect(doc.Statement[1].Action).to.deep.equal(["logs:CreateLogStream", "logs:PutLogEvents"]);
      expect(doc.Statement[2].Action).to.deep.equal(["xray:PutTraceSegments", "xray:PutTelemetryRecords"]);
      expect(doc.Statement[3].Action.every((a) => a.startsWith("ec2:"))).to.equal(true);
    });

    it("uses only the objects under the store's prefixes of the one bucket, and refuses a non-bucket ARN", () => {
      const doc = functionPolicyDocument([ARN("a")], logs, "arn:aws:s3:::wc-objects");
      const objects = doc.Statement.find((s) => s.Sid === "UseObjectStore")!;
      expect(objects.Resource).to.deep.equal([
        "arn:aws:s3:::wc-objects/extensions/*",
        "arn:aws:s3:::wc-objects/contexts/*",
        "arn:aws:s3:::wc-objects/sessions/*",
      ]);
      expect(objects.Action).to.deep.equal([
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:PutObjectTagging",
      ]);
      expect(JSON.stringify(doc)).to.not.match(/s3:\*|s3:List|"arn:aws:s3:::wc-objects"/);
      expect(() => functionPolicyDocument([ARN("a")], logs, "*")).to.throw(/not an S3 bucket ARN/);
    });

    it("refuses a wildcard or non-secret ARN and an empty list", () => {
      expect(() => functionPolicyDocument(["*"], logs)).to.throw(/not a Secrets Manager secret ARN/);
      expect(() => functionPolicyDocument(["arn:aws:s3:::bucket"], logs)).to.throw(/not a Secrets Manager/);
      expect(() => functionPolicyDocument([], logs)).to.throw(/at least one/);
      expect(() => functionPolicyDocument([ARN("a")], [])).to.throw(/log group/);
    });
  });

  describe("excludedPackages", () => {
    it("leaves out the runtime's packages and the layer's, each once, in a fresh list", () => {
      expect(excludedPackages()).to.deep.equal(EXCLUDED_PACKAGES);
      expect(excludedPackages()).to.not.equal(EXCLUDED_PACKAGES);
      const withLayer = excludedPackages(["zod", "ioredis", "zod"]);
      expect(withLayer).to.include.members([...EXCLUDED_PACKAGES, "zod", "ioredis"]);
      expect(withLayer).to.have.length(EXCLUDED_PACKAGES.length + 2);
    });
  });

  describe("the fallback", () => {
    it("knows the routes' methods and paths without carrying their handlers", async () => {
      expect(routeTable(ROUTES).every((r) => !("factory" in r))).to.equal(true);
      const handler = fallbackHandlerFactory(ROUTES)();
      const wrongMethod = await handler(apiEvent({ method: "DELETE", path: "/v1/sessions" }), ctx());
      expect(wrongMethod.statusCode).to.equal(405);
      expect(wrongMethod.headers.allow).to.include("POST");
      const unknown = await handler(apiEvent({ method: "GET", path: "/v2/nothing" }), ctx());
      expect(unknown.statusCode).to.equal(404);
      expect(JSON.parse(unknown.body)).to.include({ statusCode: 404, error: "Not Found" });
    });
  });

  describe("the Functions component", function () {
    this.timeout(30000);
    let functions: Functions;

    before(async () => {
      await installMocks();
      functions = new Functions("t-fn", {
        routes: [ROUTES[0]],
        subnetIds: ["subnet-p1", "subnet-p2"],
        securityGroupId: "sg-functions",
        redisEndpoint: ENV_INPUT.redisEndpoint,
        redisCluster: true,
        redisAuthSecretArn: ARN("auth"),
        tokenKeysSecretArn: ARN("tokens"),
        apiKeysSecretArn: ARN("keys"),
        connectHost: "connect.example.com",
        connectScheme: "wss",
        bucketName: "wc-objects-123",
        bucketArn: "arn:aws:s3:::wc-objects-123",
        memorySize: 1024,
        timeout: 8,
        logRetentionDays: 90,
        reservedConcurrency: 20,
        settings: { DEFAULT_CONCURRENCY: "10" },
        logLevel: "DEBUG",
      });
      await promiseOf(functions.roleArn);
      await settle();
    });

    it("makes one function per route plus the fallback, pinned, in the VPC, with the given sizes", () => {
      const made = ofType(T.lambda, "t-fn-")
        .map((r) => r.name)
        .sort();
      expect(made).to.deep.equal(
        [`t-fn-${FALLBACK_NAME}`, `t-fn-${SWEEP_NAME}`, `t-fn-${ROUTES[0].name}`].sort(),
      );
      for (const fn of ofType(T.lambda, "t-fn-")) {
        expect(fn.inputs).to.include({
          runtime: LAMBDA_RUNTIME,
          memorySize: 1024,
          // The create may wait for a slot: its function runs as long as API Gateway allows.
          timeout: fn.name === `t-fn-${ROUTES[0].name}` ? MAX_TIMEOUT_SECONDS : 8,
          reservedConcurrentExecutions: 20,
        });
        expect(fn.inputs.architectures).to.deep.equal([LAMBDA_ARCHITECTURE]);
        expect(fn.inputs.vpcConfig).to.deep.equal({
          subnetIds: ["subnet-p1", "subnet-p2"],
          securityGroupIds: ["sg-functions"],
        });
        expect(fn.inputs.handler).to.equal("__index.handler");
        expect(fn.inputs.environment.variables).to.include({
          REDIS_CLUSTER: "true",
          DEFAULT_CONCURRENCY: "10",
          JWE_SECRET_ARN: ARN("tokens"),
        });
      }
    });

    it("uses its own role, with no managed policy attached, for every function", () => {
      const role = find(T.role, "t-fn-role");
      for (const fn of ofType(T.lambda, "t-fn-")) expect(fn.inputs.role).to.equal(role.state.arn);
      expect(ofType("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "t-fn")).to.have.length(0);
      const policy = JSON.parse(find(T.rolePolicy, "t-fn-policy").inputs.policy);
      expect(policy.Statement[0].Resource).to.deep.equal([ARN("tokens"), ARN("keys"), ARN("auth")]);
    });

    it("gives each function a log group with the given retention and logs JSON there at the given level", () => {
      for (const fn of ofType(T.lambda, "t-fn-")) {
        const group = find(T.logGroup, `${fn.name}-logs`);
        expect(group.inputs.retentionInDays).to.equal(90);
        expect(fn.inputs.loggingConfig).to.deep.equal({
          logFormat: "JSON",
          applicationLogLevel: "DEBUG",
          systemLogLevel: "DEBUG",
          logGroup: group.state.name,
        });
        expect(fn.inputs.environment.variables).to.include({
          POWERTOOLS_LOG_LEVEL: "DEBUG",
          POWERTOOLS_METRICS_NAMESPACE: "WallCrawler",
        });
      }
    });

    it("traces every function actively and lets its role send the segments", () => {
      for (const fn of ofType(T.lambda, "t-fn-")) {
        expect(fn.inputs.tracingConfig, fn.name).to.deep.equal({ mode: "Active" });
      }
      const policy = JSON.parse(find(T.rolePolicy, "t-fn-policy").inputs.policy);
      const traces = policy.Statement.find((s: { Sid: string }) => s.Sid === "WriteTraces");
      expect(traces.Action).to.have.members(["xray:PutTraceSegments", "xray:PutTelemetryRecords"]);
    });

    it("attaches no layer when given none, and keeps its dependencies in its package", async () => {
      for (const fn of ofType(T.lambda, "t-fn-")) {
        expect(fn.inputs.layers, fn.name).to.equal(undefined);
        const names = Object.keys(await fn.inputs.code.assets);
        expect(names, fn.name).to.include("node_modules/zod");
      }
    });

    /** The fewest arguments a Functions component takes (the layer and refusal tests change one). */
    const MINIMAL_ARGS = {
      routes: [ROUTES[0]],
      subnetIds: ["s"],
      securityGroupId: "sg",
      redisEndpoint: "rediss://h:6379",
      redisCluster: false,
      redisAuthSecretArn: ARN("a"),
      tokenKeysSecretArn: ARN("t"),
      apiKeysSecretArn: ARN("k"),
      connectHost: "h",
      connectScheme: "wss" as const,
      bucketName: "b-objects",
      bucketArn: "arn:aws:s3:::b-objects",
    };

    it("attaches a dependency layer to every function and leaves its packages out of their code", async () => {
      const layerArn = "arn:aws:lambda:us-west-2:123456789012:layer:t-deps:3";
      new Functions("t-fnl", {
        ...MINIMAL_ARGS,
        dependencyLayer: { arn: layerArn, packages: ["zod", "ioredis"] },
      });
      await settle();
      const made = ofType(T.lambda, "t-fnl-");
      expect(made).to.have.length(3);
      for (const fn of made) {
        expect(fn.inputs.layers, fn.name).to.deep.equal([layerArn]);
        const names = Object.keys(await fn.inputs.code.assets);
        expect(names, fn.name).to.not.include("node_modules/zod");
        expect(names, fn.name).to.not.include("node_modules/ioredis");
      }
      // Not layered here, so still packaged.
      const create = made.find((fn) => fn.name === `t-fnl-${ROUTES[0].name}`)!;
      expect(Object.keys(await create.inputs.code.assets)).to.include("node_modules/jose");
    });

    it("refuses a dependency layer without its packages", () => {
      expect(
        () =>
          new Functions("t-bad-layer", {
            ...MINIMAL_ARGS,
            dependencyLayer: { arn: "arn:aws:lambda:us-west-2:1:layer:x:1", packages: [] },
          }),
      ).to.throw(/dependencyLayer/);
    });

    it("refuses a bad handler setting or log level before it makes any resource", async () => {
      const base = MINIMAL_ARGS;
      expect(
        () => new Functions("t-bad-setting", { ...base, settings: { SESSION_RETENTION_SECONDS: "1" } }),
      ).to.throw(/SESSION_RETENTION_SECONDS/);
      expect(() => new Functions("t-bad-level", { ...base, logLevel: "VERBOSE" })).to.throw(/logLevel/);
      // Thrown synchronously, before the component, a role, a log group or a function is registered.
      await settle();
      expect(
        recorded.filter((r) => r.name.startsWith("t-bad-setting") || r.name.startsWith("t-bad-level")),
      ).to.deep.equal([]);
    });

    it("refuses a timeout near API Gateway's limit and a retention CloudWatch does not offer", () => {
      const base = MINIMAL_ARGS;
      expect(() => new Functions("t-bad-timeout", { ...base, timeout: 29 })).to.throw(/timeout/);
      expect(() => new Functions("t-bad-retention", { ...base, logRetentionDays: 10 })).to.throw(
        /logRetentionDays/,
      );
      expect(
        () => new Functions("t-bad-name", { ...base, routes: [{ ...ROUTES[0], name: FALLBACK_NAME }] }),
      ).to.throw(/route names/);
    });
  });
});
