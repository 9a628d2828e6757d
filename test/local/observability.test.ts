import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { generateApiKey } from "../../lib/apikeys";
import { createMemoryLogger, type MemoryLogLine } from "../../lib/logger";
import { createMetrics, type EmfDocument } from "../../lib/metrics";
import { addApiKeyEntry, ensureSecretsFile, secretsPath, upsertProject } from "../../local/secrets-file";
import { startLocalStack, type LocalStack } from "../../local/stack";
import { uniqueProject } from "../support/fixtures";
import { sharedRedis } from "../support/redis";

describe("the local stack's access lines, request ids and metric lines", function () {
  this.timeout(60_000);
  let stack: LocalStack;
  let home: string;
  let key: string;
  let limitedKey: string;
  let project: string;
  const logger = createMemoryLogger();
  const metricLines: string[] = [];

  before(async () => {
    home = mkdtempSync(join(tmpdir(), "wc-observability-test-"));
    const file = secretsPath(home);
    ensureSecretsFile(file);
    project = uniqueProject("obs");
    const mine = generateApiKey(project, { name: "observability test" });
    addApiKeyEntry(file, mine.entry);
    key = mine.key;
    const limitedProject = uniqueProject("obs-limited");
    const limited = generateApiKey(limitedProject, { name: "observability test" });
    addApiKeyEntry(file, limited.entry);
    upsertProject(file, limitedProject, { concurrency: 1 });
    limitedKey = limited.key;
    stack = await startLocalStack({
      home,
      port: 0,
      redisUrl: (await sharedRedis()).url,
      connect: false,
      logger,
      // Enabled whatever the test run's environment says: these tests read the lines.
      metrics: createMetrics({ env: {}, write: (line) => metricLines.push(line) }),
    });
  });

  after(async () => {
    await stack?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  const send = (method: string, path: string, apiKey?: string, body?: unknown) =>
    fetch(`${stack.url}${path}`, {
      method,
      headers: { "content-type": "application/json", ...(apiKey ? { "x-bb-api-key": apiKey } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  const linesOf = (requestId: string): MemoryLogLine[] =>
    logger.lines.filter((line) => line.extra?.requestId === requestId);
  const accessLineOf = (requestId: string): Record<string, unknown> => {
    const access = linesOf(requestId).filter((line) => line.message === "request");
    expect(access, `one access line for ${requestId}`).to.have.length(1);
    return access[0].extra!;
  };

  it("gives one create's log lines, its access line and its x-request-id the same id", async () => {
    const res = await send("POST", "/v1/sessions", key, { timeout: 120 });
    expect(res.status).to.equal(201);
    const session = (await res.json()) as { id: string };
    const requestId = res.headers.get("x-request-id")!;
    expect(requestId).to.match(/^[0-9a-f-]{36}$/);

    const lines = linesOf(requestId);
    const created = lines.find((line) => line.message === "session created");
    expect(created, JSON.stringify(lines)).to.not.equal(undefined);
    expect(created!.extra!.sessionId).to.equal(session.id);
    // Nothing else of this request was logged without its id.
    const stray = logger.lines.filter(
      (line) => line.extra?.sessionId === session.id && line.extra?.requestId !== requestId,
    );
    expect(stray).to.deep.equal([]);

    const access = accessLineOf(requestId);
    expect(access).to.include({
      route: "POST /v1/sessions",
      method: "POST",
      status: 201,
      projectId: project,
    });
    expect(access.latencyMs).to.be.a("number").and.to.be.at.least(0);
    expect(access).to.not.have.property("errorCode");
    // The local server hands the handler one id, as API Gateway and Lambda's own are matched deployed.
    expect(access).to.not.have.property("lambdaRequestId");
  });

  it("logs 401, 404 and 429 with their status and error code, and never the key", async () => {
    const unauthorized = await send("GET", "/v1/sessions", key.slice(0, -2) + "xx");
    const notFound = await send("GET", "/v1/sessions/00000000-0000-4000-8000-000000000000", key);
    const noRoute = await send("GET", "/v1/nothing-here", key);
    const first = await send("POST", "/v1/sessions", limitedKey, {});
    expect(first.status).to.equal(201);
    const refused = await send("POST", "/v1/sessions", limitedKey, {});

    const expected: [Response, number, string, string][] = [
      [unauthorized, 401, "UnauthorizedError", "GET /v1/sessions"],
      [notFound, 404, "NotFoundError", "GET /v1/sessions/{id}"],
      [noRoute, 404, "NotFoundError", "$default"],
      [refused, 429, "TooManyRequestsError", "POST /v1/sessions"],
    ];
    for (const [res, status, errorCode, route] of expected) {
      expect(res.status).to.equal(status);
      const access = accessLineOf(res.headers.get("x-request-id")!);
      expect(access).to.include({ status, errorCode, route });
    }
    const everything = JSON.stringify(logger.lines);
    for (const secret of [key, limitedKey, key.slice(3, 30), limitedKey.slice(3, 30)])
      expect(everything.includes(secret), "a log line holds an API key").to.equal(false);
  });

  it("never mixes the ids of requests that run at once on the one logger", async () => {
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        i % 3 === 0 ? send("GET", "/v1/sessions", "wc_not-a-key") : send("POST", "/v1/sessions", key, {}),
      ),
    );
    const ids = answers.map((res) => res.headers.get("x-request-id")!);
    expect(new Set(ids).size).to.equal(ids.length);
    const bodies = await Promise.all(answers.map((res) => res.json() as Promise<{ id?: string }>));
    answers.forEach((res, i) => {
      const lines = linesOf(ids[i]);
      expect(accessLineOf(ids[i]).status).to.equal(res.status);
      if (res.status === 201) {
        const created = lines.filter((line) => line.message === "session created");
        expect(created.map((line) => line.extra!.sessionId)).to.deep.equal([bodies[i].id]);
      } else {
        expect(lines.map((line) => line.message)).to.deep.equal(["request"]);
      }
    });
  });

  it("prints valid EMF lines with the request's Redis and secrets measurements", async () => {
    metricLines.length = 0;
    const res = await send("GET", "/v1/sessions", key);
    expect(res.status).to.equal(200);
    expect(metricLines.length).to.be.greaterThan(0);
    const documents = metricLines.map((line) => JSON.parse(line) as EmfDocument);
    const names = new Set<string>();
    for (const document of documents) {
      const [directive] = document._aws.CloudWatchMetrics;
      expect(directive.Namespace).to.equal("WallCrawler");
      expect(directive.Dimensions[0]).to.include("service");
      expect(document.service).to.equal("wallcrawler-api");
      for (const metric of directive.Metrics) {
        names.add(metric.Name);
        expect(document[metric.Name], metric.Name).to.not.equal(undefined);
      }
    }
    expect([...names]).to.include("RedisLatency");
    // Keys are read from the local secrets file at most a second old: the list re-read it or did not.
    expect(JSON.stringify(documents)).to.not.include(key.slice(3, 30));
  });
  it("counts a create, a refusal at the limit and a wait for a slot per project, in EMF", async () => {
    // The limited project's one slot is taken (by an earlier test, or here).
    await send("POST", "/v1/sessions", limitedKey, {});
    metricLines.length = 0;
    const limitedProject = JSON.parse(await (await send("GET", "/v1/projects", limitedKey)).text())[0]
      .id as string;
    const refused = await send("POST", "/v1/sessions", limitedKey, {});
    expect(refused.status).to.equal(429);
    const created = await send("POST", "/v1/sessions", key, {});
    expect(created.status).to.equal(201);
    const waited = await fetch(`${stack.url}/v1/sessions`, {
      method: "POST",
      headers: { "x-bb-api-key": limitedKey, prefer: "wait=1", "content-type": "application/json" },
      body: "{}",
    });
    expect(waited.status).to.equal(429);
    /** Each value of `name` written with `projectId`, from the EMF lines. */
    const samples = (name: string, projectId: string): number[] =>
      metricLines
        .map((line) => JSON.parse(line) as EmfDocument & { projectId?: string })
        .filter((doc) => doc.projectId === projectId && doc[name] !== undefined)
        .flatMap((doc) => [doc[name] as number | number[]].flat());
    expect(samples("SessionsCreated", project)).to.deep.equal([1]);
    expect(samples("CreateLatency", project)).to.have.length(1);
    expect(samples("SessionsRefused", limitedProject)).to.deep.equal([1, 1]);
    expect(samples("QueueWaits", limitedProject)).to.deep.equal([1]);
    expect(samples("QueueWaitTime", limitedProject)[0]).to.be.at.least(900);
  });
});
