import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { DependencyError, isHttpError } from "../../lib/errors";
import {
  FileSecretSource,
  parseFileRef,
  SecretCache,
  SecretsManagerSource,
  type SecretSource,
} from "../../lib/secrets";
import { SecretsManagerClient } from "../../lib/secrets-manager";
import { MissingCredentialsError } from "../../lib/sigv4";

const ARN = "arn:aws:secretsmanager:us-west-2:123456789012:secret:wallcrawler/api-keys-AbCdEf";

interface FakeRequest {
  target: string | undefined;
  contentType: string | undefined;
  body: { SecretId?: string };
}

/**
 * A loopback stand-in for Secrets Manager that speaks the GetSecretValue JSON 1.1 protocol.
 * `mode` switches between answering, failing with a 500 and never answering.
 */
class FakeSecretsManager {
  readonly requests: FakeRequest[] = [];
  values = new Map<string, string>();
  mode: "ok" | "error" | "denied" | "hang" = "ok";
  /** Secrets answered as SecretBinary (base64) instead of SecretString. */
  readonly binary = new Set<string>();
  delayMs = 0;
  private server: Server | undefined;
  private readonly hanging: IncomingMessage[] = [];

  endpoint = "";

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
        this.requests.push({
          target: req.headers["x-amz-target"] as string | undefined,
          contentType: req.headers["content-type"],
          body,
        });
        if (this.mode === "hang") {
          this.hanging.push(req);
          return;
        }
        const answer = () => {
          if (this.mode === "error") {
            res.writeHead(500, { "content-type": "application/x-amz-json-1.1" });
            res.end(JSON.stringify({ __type: "InternalServiceError", message: "fake outage" }));
            return;
          }
          if (this.mode === "denied") {
            res.writeHead(400, { "content-type": "application/x-amz-json-1.1" });
            res.end(JSON.stringify({ __type: "AccessDeniedException", message: "not authorized" }));
            return;
          }
          const value = this.values.get(body.SecretId);
          if (req.headers["x-amz-target"] !== "secretsmanager.GetSecretValue" || value === undefined) {
            res.writeHead(400, { "content-type": "application/x-amz-json-1.1" });
            res.end(
              JSON.stringify({
                __type: "ResourceNotFoundException",
                message: "Secrets Manager can't find it",
              }),
            );
            return;
          }
          res.writeHead(200, { "content-type": "application/x-amz-json-1.1" });
          res.end(
            JSON.stringify({
              ARN: body.SecretId,
              Name: "wallcrawler/api-keys",
              ...(this.binary.has(body.SecretId)
                ? { SecretBinary: Buffer.from(value, "utf8").toString("base64") }
                : { SecretString: value }),
              VersionId: "00000000-0000-0000-0000-000000000001",
              VersionStages: ["AWSCURRENT"],
              CreatedDate: 1.7e9,
            }),
          );
        };
        if (this.delayMs > 0) setTimeout(answer, this.delayMs);
        else answer();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.endpoint = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  /** Closes the listener: further requests get ECONNREFUSED. */
  async stop(): Promise<void> {
    for (const req of this.hanging.splice(0)) req.socket.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

function testClient(endpoint: string): SecretsManagerClient {
  return new SecretsManagerClient({
    endpoint,
    region: "us-west-2",
    credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "fake-secret-key" },
    maxAttempts: 1,
  });
}

/** A cache whose clock the test moves. */
function cacheWith(source: SecretSource, options: { ttlMs?: number; maxStaleMs?: number } = {}) {
  const clock = { now: 1_000_000 };
  const stale: { ref: string; error: unknown }[] = [];
  const cache = new SecretCache(source, new FileSecretSource(), {
    ttlMs: options.ttlMs ?? 60_000,
    maxStaleMs: options.maxStaleMs ?? 300_000,
    now: () => clock.now,
    onStale: (ref, error) => stale.push({ ref, error }),
  });
  return { cache, clock, stale };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  expect.fail("the promise resolved");
}

describe("secrets", () => {
  let fake: FakeSecretsManager;
  let source: SecretsManagerSource;

  beforeEach(async () => {
    fake = new FakeSecretsManager();
    await fake.start();
    fake.values.set(ARN, '{"keys":[]}');
    source = new SecretsManagerSource(testClient(fake.endpoint));
  });
  afterEach(() => fake.stop());

  describe("SecretsManagerSource", () => {
    it("calls GetSecretValue over the JSON 1.1 protocol and returns SecretString", async () => {
      expect(await source.fetch(ARN)).to.equal('{"keys":[]}');
      expect(fake.requests).to.have.length(1);
      expect(fake.requests[0].target).to.equal("secretsmanager.GetSecretValue");
      expect(fake.requests[0].contentType).to.equal("application/x-amz-json-1.1");
      expect(fake.requests[0].body).to.deep.equal({ SecretId: ARN });
    });

    it("returns a SecretBinary value as its UTF-8 text", async () => {
      fake.binary.add(ARN);
      fake.values.set(ARN, '{"keys":["\u00e9"]}');
      expect(await source.fetch(ARN)).to.equal('{"keys":["\u00e9"]}');
    });
  });

  describe("SecretsManagerSource without credentials", () => {
    it("is a 503 whose cause names the missing variables, without asking the service", async () => {
      const noCredentials = new SecretsManagerSource(undefined, {
        AWS_REGION: "us-west-2",
        AWS_ENDPOINT_URL_SECRETS_MANAGER: fake.endpoint,
      });
      const error = await rejection(cacheWith(noCredentials).cache.get(ARN));
      expect(error).to.be.instanceOf(DependencyError);
      expect((error as DependencyError).statusCode).to.equal(503);
      const cause = (error as DependencyError).cause;
      expect(cause).to.be.instanceOf(MissingCredentialsError);
      expect((cause as Error).message).to.include("AWS_ACCESS_KEY_ID");
      expect(fake.requests).to.have.length(0);
    });
  });

  describe("what the functions load", () => {
    it("does not load the AWS SDK's Secrets Manager client with the runtime", () => {
      const loaded = execFileSync(
        process.execPath,
        [
          "-r",
          "ts-node/register/transpile-only",
          "-e",
          'require("./lib/runtime"); console.log(JSON.stringify(Object.keys(require.cache)))',
        ],
        { cwd: join(__dirname, "..", ".."), encoding: "utf8" },
      );
      const modules = JSON.parse(loaded) as string[];
      expect(modules.some((path) => path.includes("lib/secrets-manager"))).to.equal(true);
      expect(modules.filter((path) => path.includes("@aws-sdk/"))).to.deep.equal([]);
    });
  });

  describe("SecretsManagerSource with its own client", () => {
    let saved: string | undefined;
    beforeEach(() => {
      saved = process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER;
      process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER = fake.endpoint;
    });
    afterEach(() => {
      if (saved === undefined) delete process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER;
      else process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER = saved;
    });

    it("honours AWS_ENDPOINT_URL_SECRETS_MANAGER", async () => {
      expect(await new SecretsManagerSource().fetch(ARN)).to.equal('{"keys":[]}');
      expect(fake.requests.map((r) => r.body.SecretId)).to.deep.equal([ARN]);
    });

    it("gives up on a service that never answers (a 503, not a hang until the Lambda times out)", async function () {
      // Fails by mocha timeout if the client's request timeout does not abort a hung call.
      this.timeout(6000);
      fake.mode = "hang";
      const { cache } = cacheWith(new SecretsManagerSource());
      const error = await rejection(cache.get(ARN));
      expect(error).to.be.instanceOf(DependencyError);
      expect(fake.requests.length).to.be.within(1, 2);
    });
  });

  describe("SecretCache over Secrets Manager", () => {
    it("fetches once for many gets inside the TTL", async () => {
      const { cache, clock } = cacheWith(source);
      for (let i = 0; i < 10; i++) {
        expect(await cache.get(ARN)).to.equal('{"keys":[]}');
        clock.now += 5_000;
      }
      expect(fake.requests).to.have.length(1);
    });

    it("parses a fetched value once however often it is read", async () => {
      const { cache } = cacheWith(source);
      let parses = 0;
      const parse = (raw: string) => {
        parses += 1;
        return JSON.parse(raw) as { keys: unknown[] };
      };
      const first = await cache.getParsed(ARN, parse);
      const second = await cache.getParsed(ARN, parse);
      expect(second).to.equal(first);
      expect(first).to.deep.equal({ keys: [] });
      expect(parses).to.equal(1);
    });

    it("fetches again once the TTL has passed and serves the new value", async () => {
      const { cache, clock } = cacheWith(source, { ttlMs: 60_000 });
      expect(await cache.get(ARN)).to.equal('{"keys":[]}');
      fake.values.set(ARN, '{"keys":["rotated"]}');
      clock.now += 59_999;
      expect(await cache.get(ARN), "still inside the TTL").to.equal('{"keys":[]}');
      clock.now += 2;
      expect(await cache.get(ARN)).to.equal('{"keys":["rotated"]}');
      expect(fake.requests).to.have.length(2);
    });

    it("re-parses only when a refresh brings a different value", async () => {
      const { cache, clock } = cacheWith(source, { ttlMs: 1_000 });
      let parses = 0;
      const parse = (raw: string) => {
        parses += 1;
        return raw.length;
      };
      await cache.getParsed(ARN, parse);
      clock.now += 1_001;
      await cache.getParsed(ARN, parse);
      expect(fake.requests).to.have.length(2);
      expect(parses, "same value after refresh").to.equal(1);
      fake.values.set(ARN, '{"keys":[1]}');
      clock.now += 1_001;
      expect(await cache.getParsed(ARN, parse)).to.equal('{"keys":[1]}'.length);
      expect(parses).to.equal(2);
    });

    it("shares one fetch among concurrent gets", async () => {
      const { cache } = cacheWith(source);
      fake.delayMs = 50;
      const values = await Promise.all(Array.from({ length: 25 }, () => cache.get(ARN)));
      expect(new Set(values)).to.deep.equal(new Set(['{"keys":[]}']));
      expect(fake.requests).to.have.length(1);
    });

    it("serves the last good value during an outage within maxStale and reports it", async () => {
      const { cache, clock, stale } = cacheWith(source, { ttlMs: 60_000, maxStaleMs: 300_000 });
      await cache.get(ARN);
      fake.mode = "error";
      clock.now += 60_000 + 250_000;
      expect(await cache.get(ARN)).to.equal('{"keys":[]}');
      expect(fake.requests, "the refresh was attempted").to.have.length(2);
      expect(stale).to.have.length(1);
      expect(stale[0].ref).to.equal(ARN);
      expect(stale[0].error).to.be.instanceOf(Error);
    });

    it("serves the last good value when the endpoint refuses connections", async () => {
      const { cache, clock, stale } = cacheWith(source);
      await cache.get(ARN);
      await fake.stop();
      clock.now += 61_000;
      expect(await cache.get(ARN)).to.equal('{"keys":[]}');
      expect(stale).to.have.length(1);
    });

    it("returns to fresh values once the service recovers", async () => {
      const { cache, clock } = cacheWith(source, { ttlMs: 1_000 });
      await cache.get(ARN);
      fake.mode = "error";
      clock.now += 2_000;
      await cache.get(ARN);
      fake.mode = "ok";
      fake.values.set(ARN, "after");
      clock.now += 5_000; // past the retry backoff that follows a failed refresh
      expect(await cache.get(ARN)).to.equal("after");
    });

    it("after a failed refresh serves the stale value without asking again until the backoff has passed", async () => {
      const { cache, clock, stale } = cacheWith(source, { ttlMs: 1_000 });
      const before = await cache.get(ARN);
      fake.mode = "error";
      clock.now += 2_000;
      expect(await cache.get(ARN)).to.equal(before);
      const asked = fake.requests.length;
      clock.now += 4_000;
      // Within the backoff: answered from the cache at once, the failing service is not asked.
      expect(await cache.get(ARN)).to.equal(before);
      expect(await cache.get(ARN)).to.equal(before);
      expect(fake.requests.length).to.equal(asked);
      expect(stale).to.have.length(1);
      clock.now += 1_001;
      expect(await cache.get(ARN)).to.equal(before);
      expect(fake.requests.length).to.be.greaterThan(asked);
      expect(stale).to.have.length(2);
    });

    it("is a 503 DependencyError when the service is down and nothing is cached", async () => {
      const { cache, stale } = cacheWith(source);
      fake.mode = "error";
      const error = await rejection(cache.get(ARN));
      expect(error).to.be.instanceOf(DependencyError);
      expect(isHttpError(error)).to.equal(true);
      expect((error as DependencyError).statusCode).to.equal(503);
      expect((error as DependencyError).expose).to.equal(false);
      expect((error as DependencyError).message).to.equal("Secrets Manager is unavailable");
      expect((error as DependencyError).message).not.to.include("fake outage");
      expect(stale).to.have.length(0);
    });

    it("is a 503 DependencyError for a refused connection with nothing cached", async () => {
      await fake.stop();
      const error = await rejection(cacheWith(source).cache.get(ARN));
      expect(error).to.be.instanceOf(DependencyError);
      expect((error as DependencyError).statusCode).to.equal(503);
    });

    it("is a 503 DependencyError once the stale window has passed", async () => {
      const { cache, clock, stale } = cacheWith(source, { ttlMs: 60_000, maxStaleMs: 300_000 });
      await cache.get(ARN);
      fake.mode = "error";
      clock.now += 60_000 + 300_000 + 1;
      const error = await rejection(cache.get(ARN));
      expect(error).to.be.instanceOf(DependencyError);
      expect((error as DependencyError).statusCode).to.equal(503);
      expect(stale).to.have.length(0);
    });

    it("does not serve a stale value when maxStale is zero", async () => {
      const { cache, clock } = cacheWith(source, { ttlMs: 1_000, maxStaleMs: 0 });
      await cache.get(ARN);
      fake.mode = "error";
      clock.now += 1_000;
      expect(await rejection(cache.get(ARN))).to.be.instanceOf(DependencyError);
    });

    it("is a 503 naming the AWS error code when access is denied, and serves a cached value meanwhile", async () => {
      const { cache, clock, stale } = cacheWith(source);
      fake.mode = "denied";
      const error = await rejection(cache.get(ARN));
      expect(error).to.be.instanceOf(DependencyError);
      expect((error as DependencyError).statusCode).to.equal(503);
      expect(((error as DependencyError).cause as Error).name).to.equal("AccessDeniedException");
      fake.mode = "ok";
      await cache.get(ARN);
      fake.mode = "denied";
      clock.now += 61_000;
      expect(await cache.get(ARN)).to.equal('{"keys":[]}');
      expect((stale[0].error as Error).name).to.equal("AccessDeniedException");
    });

    it("is a 503 for a secret Secrets Manager does not have", async () => {
      const error = await rejection(cacheWith(source).cache.get(ARN + "-missing"));
      expect(error).to.be.instanceOf(DependencyError);
    });
  });

  describe("FileSecretSource", () => {
    let dir: string;
    let file: string;

    before(() => {
      dir = mkdtempSync(join(tmpdir(), "wc-secrets-"));
      file = join(dir, "secrets#1.json");
      writeFileSync(
        file,
        JSON.stringify({
          apiKeys: { keys: [{ projectId: "local" }] },
          tokenKeys: { current: "a" },
          auth: "pa55",
        }),
      );
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it("reads one field of a JSON file as the JSON text Secrets Manager would hold", async () => {
      const files = new FileSecretSource();
      expect(JSON.parse(await files.fetch(`file:${file}#apiKeys`))).to.deep.equal({
        keys: [{ projectId: "local" }],
      });
      expect(await files.fetch(`file:${file}#auth`), "string fields as they are").to.equal("pa55");
    });

    it("reads the whole document when no field is named", async () => {
      const plain = join(dir, "plain.json");
      writeFileSync(plain, JSON.stringify({ apiKeys: { keys: [] }, auth: "pa55" }));
      const document = JSON.parse(await new FileSecretSource().fetch(`file:${plain}`));
      expect(document).to.deep.equal({ apiKeys: { keys: [] }, auth: "pa55" });
    });

    it("names a missing field", async () => {
      const error = await rejection(new FileSecretSource().fetch(`file:${file}#nope`));
      expect((error as Error).message).to.include("nope");
    });

    it("splits a reference at its last #", () => {
      expect(parseFileRef(`file:${file}#tokenKeys`)).to.deep.equal({ path: file, field: "tokenKeys" });
    });

    it("serves file references from the file, never asking Secrets Manager", async () => {
      const { cache } = cacheWith(source);
      expect(await cache.get(`file:${file}#auth`)).to.equal("pa55");
      expect(fake.requests).to.have.length(0);
    });

    it("is a 503 naming the local secrets file when the file is missing", async () => {
      const error = await rejection(cacheWith(source).cache.get(`file:${join(dir, "absent.json")}#apiKeys`));
      expect(error).to.be.instanceOf(DependencyError);
      expect((error as DependencyError).dependency).to.equal("local secrets file");
    });
  });
});
