import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { expect } from "chai";
import { Redis } from "ioredis";
import { DependencyError, NotFoundError } from "../../lib/errors";
import { json, withErrorHandling, type HttpHandler } from "../../lib/http";
import { createMemoryLogger } from "../../lib/logger";
import { createMetrics, type EmfDocument, type Metrics } from "../../lib/metrics";
import { createRedisClient, instrumentRedis } from "../../lib/redis";
import { FileSecretSource, SecretCache } from "../../lib/secrets";
import { createTracing, NO_TRACING, tracingActive } from "../../lib/tracing";
import { sharedRedis } from "../support/redis";

/** Metrics whose EMF lines the test reads back, parsed. */
function collectingMetrics(env: Record<string, string> = {}): { metrics: Metrics; documents: EmfDocument[] } {
  const documents: EmfDocument[] = [];
  const metrics = createMetrics({ env, write: (line) => documents.push(JSON.parse(line) as EmfDocument) });
  return { metrics, documents };
}

/** The value of `name` in the one document that has it (with these extra dimensions). */
function valueOf(documents: EmfDocument[], name: string, projectId?: string): unknown {
  const having = documents.filter(
    (d) =>
      d[name] !== undefined &&
      (projectId === undefined ? d.projectId === undefined : d.projectId === projectId),
  );
  expect(having, `one document with ${name}`).to.have.length(1);
  return having[0][name];
}

/** The samples of a duration metric (EMF writes a single one as a number, several as an array). */
function samplesOf(documents: EmfDocument[], name: string): number[] {
  const value = valueOf(documents, name);
  return Array.isArray(value) ? (value as number[]) : [value as number];
}

/** A payload-2.0 event as API Gateway sends it, with its own request id. */
function gatewayEvent(method: string, path: string, requestId?: string): APIGatewayProxyEventV2 {
  return {
    version: "2.0",
    routeKey: `${method} ${path}`,
    rawPath: path,
    rawQueryString: "",
    headers: {},
    requestContext: {
      accountId: "123456789012",
      apiId: "test",
      domainName: "api.test.example",
      domainPrefix: "api",
      http: { method, path, protocol: "HTTP/1.1", sourceIp: "127.0.0.1", userAgent: "test" },
      requestId: requestId as string,
      routeKey: `${method} ${path}`,
      stage: "$default",
      time: new Date().toUTCString(),
      timeEpoch: Date.now(),
    },
    isBase64Encoded: false,
  };
}

describe("observability", () => {
  describe("metrics in embedded metric format", () => {
    it("writes valid EMF: namespace, the service dimension, each metric's unit and value", () => {
      const { metrics, documents } = collectingMetrics();
      metrics.count("SessionsCreated", 1, { projectId: "p1" });
      metrics.count("SessionsCreated", 1, { projectId: "p1" });
      metrics.count("SessionsCreated", 1, { projectId: "p2" });
      metrics.duration("CreateLatency", 12.34);
      metrics.duration("CreateLatency", 7);
      expect(documents).to.have.length(0);
      metrics.flush();

      expect(documents).to.have.length(3);
      for (const document of documents) {
        expect(document._aws.Timestamp).to.be.a("number");
        const [directive] = document._aws.CloudWatchMetrics;
        expect(directive.Namespace).to.equal("WallCrawler");
        expect(directive.Dimensions).to.have.length(1);
        for (const dimension of directive.Dimensions[0])
          expect(document[dimension], dimension).to.be.a("string");
        expect(document.service).to.equal("wallcrawler-api");
      }
      expect(valueOf(documents, "SessionsCreated", "p1")).to.equal(2);
      expect(valueOf(documents, "SessionsCreated", "p2")).to.equal(1);
      expect(valueOf(documents, "CreateLatency")).to.deep.equal([12.3, 7]);
      const perProject = documents.find((d) => d.projectId === "p1")!;
      expect(perProject._aws.CloudWatchMetrics[0].Dimensions[0]).to.have.members(["service", "projectId"]);
      expect(perProject._aws.CloudWatchMetrics[0].Metrics).to.deep.equal([
        { Name: "SessionsCreated", Unit: "Count" },
      ]);
      const latency = documents.find((d) => d.CreateLatency !== undefined)!;
      expect(latency._aws.CloudWatchMetrics[0].Metrics).to.deep.equal([
        { Name: "CreateLatency", Unit: "Milliseconds" },
      ]);

      metrics.flush();
      expect(documents, "a flush with nothing recorded writes nothing").to.have.length(3);
    });

    it("splits more samples than one document may hold, and keeps every one", () => {
      const { metrics, documents } = collectingMetrics();
      for (let i = 0; i < 250; i++) metrics.duration("RedisLatency", i);
      metrics.flush();
      const values = documents.flatMap((d) => d.RedisLatency as number[]);
      expect(documents.length).to.equal(3);
      for (const d of documents) expect((d.RedisLatency as number[]).length).to.be.at.most(100);
      expect(values).to.deep.equal(Array.from({ length: 250 }, (_, i) => i));
    });

    it("takes the namespace from POWERTOOLS_METRICS_NAMESPACE and writes nothing when disabled", () => {
      const named = collectingMetrics({ POWERTOOLS_METRICS_NAMESPACE: "Staging" });
      named.metrics.count("RateLimited");
      named.metrics.flush();
      expect(named.documents[0]._aws.CloudWatchMetrics[0].Namespace).to.equal("Staging");

      const off = collectingMetrics({ POWERTOOLS_METRICS_DISABLED: "true" });
      off.metrics.count("RateLimited");
      off.metrics.flush();
      expect(off.documents).to.deep.equal([]);
    });
  });

  describe("the HTTP adapter", () => {
    const setup = () => {
      const logger = createMemoryLogger();
      const { metrics, documents } = collectingMetrics();
      logger.telemetry = { metrics, tracing: NO_TRACING };
      return { logger, metrics, documents };
    };

    it("answers with API Gateway's request id, and logs every line of the request with it", async () => {
      const { logger } = setup();
      const handler = withErrorHandling(logger, async () => {
        logger.info("doing the work", { step: 1 });
        await new Promise((resolve) => setTimeout(resolve, 5));
        logger.appendKeys!({ projectId: "p-seen" });
        logger.warn("still working");
        return json(200, { ok: true });
      });
      const res = await handler(gatewayEvent("GET", "/v1/things", "gw-id-1"), {
        awsRequestId: "lambda-id-1",
      });
      expect(res.headers["x-request-id"]).to.equal("gw-id-1");
      expect(logger.lines.map((line) => [line.message, line.extra?.requestId])).to.deep.equal([
        ["doing the work", "gw-id-1"],
        ["still working", "gw-id-1"],
        ["request", "gw-id-1"],
      ]);
      expect(logger.lines[1].extra!.projectId).to.equal("p-seen");
      const access = logger.lines[2].extra!;
      expect(access).to.include({
        requestId: "gw-id-1",
        lambdaRequestId: "lambda-id-1",
        route: "GET /v1/things",
        method: "GET",
        status: 200,
        projectId: "p-seen",
      });
      expect(access.latencyMs).to.be.a("number");
      expect(access).to.not.have.property("errorCode");
    });

    it("falls back to Lambda's request id for an event without one", async () => {
      const { logger } = setup();
      const handler = withErrorHandling(logger, async () => json(200, {}));
      const res = await handler(gatewayEvent("GET", "/v1/things"), { awsRequestId: "lambda-only" });
      expect(res.headers["x-request-id"]).to.equal("lambda-only");
      expect(logger.lines[0].extra).to.include({ requestId: "lambda-only" });
      expect(logger.lines[0].extra).to.not.have.property("lambdaRequestId");
    });

    it("puts the error's code on the access line of a 4xx and a 5xx", async () => {
      const { logger } = setup();
      const failing = (error: unknown): HttpHandler =>
        withErrorHandling(logger, async () => {
          throw error;
        });
      const cases: [unknown, number, string][] = [
        [new NotFoundError("no such thing"), 404, "NotFoundError"],
        [new DependencyError("Redis", new Error("ECONNREFUSED")), 503, "DependencyError"],
        [new Error("boom"), 500, "InternalError"],
      ];
      for (const [error, status, errorCode] of cases) {
        const id = `gw-${errorCode}`;
        const res = await failing(error)(gatewayEvent("GET", "/v1/things", id), { awsRequestId: "l" });
        expect(res.statusCode).to.equal(status);
        expect(res.headers["x-request-id"]).to.equal(id);
        const access = logger.lines.find(
          (line) => line.message === "request" && line.extra?.requestId === id,
        );
        expect(access?.extra).to.include({ status, errorCode });
      }
      // The 5xx causes are logged with the same id as their access lines.
      const causes = logger.lines
        .filter((line) => line.level === "error")
        .map((line) => line.extra!.requestId);
      expect(causes).to.deep.equal(["gw-DependencyError", "gw-InternalError"]);
    });

    it("flushes the metrics once per request, after the handler is done", async () => {
      const { logger, metrics, documents } = setup();
      let seenDuringHandler = -1;
      const handler = withErrorHandling(logger, async () => {
        metrics.count("SessionsCreated", 1, { projectId: "p1" });
        metrics.duration("CreateLatency", 3);
        seenDuringHandler = documents.length;
        return json(201, {});
      });
      await handler(gatewayEvent("POST", "/v1/sessions", "gw-flush"), { awsRequestId: "l" });
      expect(seenDuringHandler).to.equal(0);
      expect(valueOf(documents, "SessionsCreated", "p1")).to.equal(1);
      expect(samplesOf(documents, "CreateLatency")).to.deep.equal([3]);
    });
  });

  describe("Redis commands", () => {
    let client: Redis;
    let documents: EmfDocument[];
    let metrics: Metrics;

    beforeEach(async () => {
      ({ metrics, documents } = collectingMetrics());
      client = new Redis((await sharedRedis()).url, { maxRetriesPerRequest: 1 });
      instrumentRedis(client, { metrics, tracing: NO_TRACING });
      await client.ping();
      metrics.flush();
      documents.length = 0;
    });
    afterEach(() => client.disconnect());

    it("are one latency sample each, a pipeline one for all its commands", async () => {
      const key = `obs:${randomBytes(4).toString("hex")}`;
      await client.set(key, "1");
      await client.get(key);
      const pipeline = client.pipeline();
      for (let i = 0; i < 5; i++) pipeline.incr(key);
      await pipeline.exec();
      await client.del(key);
      metrics.flush();
      expect(samplesOf(documents, "RedisLatency")).to.have.length(4);
      expect(documents.some((d) => d.RedisErrors !== undefined)).to.equal(false);
    });

    it("count nothing against Redis for the client's own connection set-up", async () => {
      // The stack's client, fresh: its handshake must not send what an older Redis refuses
      // (CLIENT SETINFO is Redis 7.2+; ElastiCache's Redis OSS 7.1 answers it with an error).
      const fresh = createRedisClient({
        url: (await sharedRedis()).url,
        cluster: false,
        connectTimeoutMs: 2000,
        commandTimeoutMs: 2000,
      });
      try {
        instrumentRedis(fresh, { metrics, tracing: NO_TRACING });
        await fresh.ping();
        metrics.flush();
        expect(documents.some((d) => d.RedisErrors !== undefined)).to.equal(false);
        expect(samplesOf(documents, "RedisLatency").length).to.be.greaterThan(0);
      } finally {
        fresh.disconnect();
      }
    });

    it("count each failed command in RedisErrors", async () => {
      const key = `obs:${randomBytes(4).toString("hex")}`;
      await client.hset(key, "field", "value");
      const failure = await client.incr(key).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(String(failure)).to.match(/WRONGTYPE/);
      await client.del(key);
      metrics.flush();
      expect(valueOf(documents, "RedisErrors")).to.equal(1);
      expect(samplesOf(documents, "RedisLatency")).to.have.length(3);
    });
  });

  describe("secret fetches", () => {
    it("count a failed fetch in SecretsErrors and time every fetch", async () => {
      const { metrics, documents } = collectingMetrics();
      const dir = mkdtempSync(join(tmpdir(), "wc-obs-secrets-"));
      const cache = new SecretCache(new FileSecretSource(), new FileSecretSource(), {
        ttlMs: 0,
        maxStaleMs: 0,
        metrics,
      });
      const failure = await cache.get(`file:${join(dir, "missing.json")}#apiKeys`).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure).to.be.instanceOf(DependencyError);
      metrics.flush();
      expect(valueOf(documents, "SecretsErrors")).to.equal(1);
      expect(samplesOf(documents, "SecretsLatency")).to.have.length(1);
    });
  });

  describe("tracing", () => {
    it("is active only in a function with active tracing, or when asked for", () => {
      expect(tracingActive({})).to.equal(false);
      expect(tracingActive({ AWS_XRAY_DAEMON_ADDRESS: "169.254.79.129:2000" })).to.equal(false);
      expect(
        tracingActive({
          AWS_LAMBDA_FUNCTION_NAME: "api-fn-x",
          AWS_XRAY_DAEMON_ADDRESS: "169.254.79.129:2000",
        }),
      ).to.equal(true);
      expect(
        tracingActive({
          AWS_LAMBDA_FUNCTION_NAME: "api-fn-x",
          AWS_XRAY_DAEMON_ADDRESS: "169.254.79.129:2000",
          POWERTOOLS_TRACE_ENABLED: "false",
        }),
      ).to.equal(false);
      expect(tracingActive({ POWERTOOLS_TRACE_ENABLED: "true" })).to.equal(true);
    });

    it("does not load the tracer (and the X-Ray SDK) where tracing is off", () => {
      expect(createTracing({})).to.equal(NO_TRACING);
      const loaded = Object.keys(require.cache).filter((path) =>
        /aws-xray-sdk-core|powertools[\\/]tracer/.test(path),
      );
      expect(loaded).to.deep.equal([]);
    });
  });
});
