import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { expect } from "chai";
import { sharedRedis } from "../support/redis";

const REPO = join(__dirname, "..", "..");

/**
 * Runs in a child process (the tracer patches http globally and reads Lambda's environment at
 * load): a fake X-Ray daemon on a loopback UDP port, the tracing the runtime would build in a
 * function with active tracing, one invocation with a Redis command and a secret fetch. Prints
 * the segment documents the daemon received.
 */
const CHILD = `
const { createSocket } = require("node:dgram");
const daemon = createSocket("udp4");
const received = [];
daemon.on("message", (message) => received.push(JSON.parse(message.toString().split("\\n")[1])));
daemon.bind(0, "127.0.0.1", async () => {
  Object.assign(process.env, {
    AWS_LAMBDA_FUNCTION_NAME: "api-fn-test",
    AWS_EXECUTION_ENV: "AWS_Lambda_nodejs22.x",
    LAMBDA_TASK_ROOT: process.cwd(),
    _X_AMZN_TRACE_ID: "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    AWS_XRAY_DAEMON_ADDRESS: "127.0.0.1:" + daemon.address().port,
  });
  const { createTracing } = require("./lib/tracing");
  const { createRedisClient, instrumentRedis } = require("./lib/redis");
  const { SecretCache, FileSecretSource } = require("./lib/secrets");
  const { NO_METRICS } = require("./lib/metrics");
  const tracing = createTracing(process.env);
  const redis = createRedisClient({ url: process.env.TEST_REDIS_URL, cluster: false, connectTimeoutMs: 2000, commandTimeoutMs: 2000 });
  instrumentRedis(redis, { metrics: NO_METRICS, tracing });
  const secrets = new SecretCache(new FileSecretSource(), new FileSecretSource(), { ttlMs: 0, maxStaleMs: 0, tracing });
  const invocation = tracing.beginInvocation("GET /v1/sessions");
  await redis.ping();
  await secrets.get("file:" + process.cwd() + "/package.json#name");
  tracing.annotate("projectId", "p-traced");
  invocation.end();
  redis.disconnect();
  setTimeout(() => { console.log(JSON.stringify({ enabled: tracing.enabled, received })); daemon.close(); }, 300);
});
`;

describe("tracing in a function with active tracing", function () {
  this.timeout(60_000);

  it("sends the invocation's subsegment with Redis and secrets subsegments under it to the X-Ray daemon", async () => {
    const redisUrl = (await sharedRedis()).url;
    const child = spawnSync(process.execPath, ["-r", "ts-node/register/transpile-only", "-e", CHILD], {
      cwd: REPO,
      env: { ...process.env, TEST_REDIS_URL: redisUrl, POWERTOOLS_TRACE_ENABLED: "" },
      encoding: "utf8",
      timeout: 50_000,
    });
    expect(child.status, child.stderr).to.equal(0);
    const out = JSON.parse(child.stdout.trim().split("\n").pop()!) as {
      enabled: boolean;
      received: {
        id: string;
        name: string;
        parent_id: string;
        namespace?: string;
        annotations?: Record<string, unknown>;
      }[];
    };
    expect(out.enabled).to.equal(true);
    const invocation = out.received.find((segment) => segment.name === "## GET /v1/sessions");
    expect(invocation, JSON.stringify(out.received)).to.not.equal(undefined);
    // The facade segment Lambda made for this trace header is the parent.
    expect(invocation!.parent_id).to.equal("53995c3f42cd8ad8");
    expect(invocation!.annotations).to.include({ projectId: "p-traced", Service: "wallcrawler-api" });
    const children = out.received.filter((segment) => segment.parent_id === invocation!.id);
    expect(children.map((segment) => segment.name)).to.include.members(["Redis", "local secrets file"]);
    for (const segment of children) expect(segment.namespace).to.equal("remote");
  });
});
