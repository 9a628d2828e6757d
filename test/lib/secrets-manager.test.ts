import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type ServerResponse, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { join } from "node:path";
import { expect } from "chai";
import { describeCause } from "../../lib/http";
import { SecretsManagerSource } from "../../lib/secrets";
import {
  SecretsManagerClient,
  SecretsManagerError,
  secretsManagerEndpoint,
  type SecretsManagerClientOptions,
} from "../../lib/secrets-manager";
import { MissingCredentialsError } from "../../lib/sigv4";
import { sdkAuthorization } from "../support/sdk-signer";

const ARN = "arn:aws:secretsmanager:us-west-2:123456789012:secret:wallcrawler/api-keys-AbCdEf";
const REGION = "us-west-2";
const CREDENTIALS = {
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: "fake-secret-access-key/for+tests",
  sessionToken: "FAKE-session-token/for+tests==",
};

/** What the fake answers one request with: an HTTP answer, silence, or a connection dropped mid-answer. */
type HttpAnswer = { status: number; body: string; headers?: Record<string, string> };
type Answer = HttpAnswer | "hang" | "drop";

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  /** Whether the signature is the one the SDK's signer computes with the fake's known secret key. */
  signatureValid: boolean;
  socket: Socket;
}

const json = (status: number, value: unknown, headers?: Record<string, string>): HttpAnswer => ({
  status,
  body: JSON.stringify(value),
  headers,
});

/**
 * Secrets Manager on loopback: checks each request's SigV4 signature against one the AWS SDK's
 * signer computes from the same request and the credentials it knows, refuses a bad one as the
 * service does, then plays `script` (one answer per request) before answering with `values`.
 */
class VerifyingSecretsManager {
  readonly received: Received[] = [];
  readonly values = new Map<string, string>();
  readonly script: Answer[] = [];
  endpoint = "";
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        void this.verify(req.headers, body).then((signatureValid) => {
          this.received.push({ headers: req.headers, body, signatureValid, socket: req.socket });
          this.answer(res, signatureValid ? this.script.shift() : undefined, body, signatureValid);
        });
      });
    });
    this.server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.endpoint = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  /** Recomputes the signature over the headers the request says it signed. */
  private async verify(headers: IncomingHttpHeaders, body: string): Promise<boolean> {
    const authorization = headers.authorization ?? "";
    const match =
      /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=[0-9a-f]{64}$/.exec(
        authorization,
      );
    if (!match || match[1] !== CREDENTIALS.accessKeyId) return false;
    const [, , , region, service, signedHeaders] = match;
    const signed: Record<string, string> = {};
    for (const name of signedHeaders.split(";")) {
      if (name === "x-amz-date" || name === "x-amz-security-token") continue; // the signer adds these
      signed[name] = String(headers[name]);
    }
    const date = String(headers["x-amz-date"]);
    const expected = await sdkAuthorization({
      host: String(headers.host),
      path: "/",
      headers: signed,
      body,
      region,
      service,
      credentials: {
        ...CREDENTIALS,
        sessionToken: headers["x-amz-security-token"] === undefined ? undefined : CREDENTIALS.sessionToken,
      },
      date: new Date(
        `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}T${date.slice(9, 11)}:${date.slice(11, 13)}:${date.slice(13, 15)}Z`,
      ),
    });
    return expected === authorization;
  }

  private answer(
    res: ServerResponse,
    scripted: Answer | undefined,
    body: string,
    signatureValid: boolean,
  ): void {
    if (scripted === "hang") return;
    if (scripted === "drop") {
      res.writeHead(200, { "content-type": "application/x-amz-json-1.1", "content-length": "1000" });
      res.write('{"SecretString":"par');
      setTimeout(() => res.socket?.destroy(), 10);
      return;
    }
    let answer: HttpAnswer | undefined = scripted;
    if (!answer && !signatureValid) {
      answer = json(400, {
        __type: "InvalidSignatureException",
        message: "The request signature we calculated does not match the signature you provided.",
      });
    }
    if (!answer) {
      const secretId = (JSON.parse(body) as { SecretId?: string }).SecretId ?? "";
      const value = this.values.get(secretId);
      answer =
        value === undefined
          ? json(400, {
              __type: "ResourceNotFoundException",
              message: "Secrets Manager can't find the specified secret.",
            })
          : json(200, { ARN: secretId, Name: "wallcrawler/api-keys", SecretString: value, VersionId: "v1" });
    }
    res.writeHead(answer.status, { "content-type": "application/x-amz-json-1.1", ...answer.headers });
    res.end(answer.body);
  }
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  expect.fail("the promise resolved");
}

describe("secrets-manager", () => {
  let fake: VerifyingSecretsManager;
  const clients: SecretsManagerClient[] = [];

  function client(options: Partial<SecretsManagerClientOptions> = {}): SecretsManagerClient {
    const made = new SecretsManagerClient({
      endpoint: fake.endpoint,
      region: REGION,
      credentials: CREDENTIALS,
      ...options,
    });
    clients.push(made);
    return made;
  }

  beforeEach(async () => {
    fake = new VerifyingSecretsManager();
    await fake.start();
    fake.values.set(ARN, '{"keys":[]}');
  });
  afterEach(async () => {
    for (const made of clients.splice(0)) made.destroy();
    await fake.stop();
  });

  describe("GetSecretValue", () => {
    it("sends a SigV4-signed JSON 1.1 call that the SDK's signer agrees with, and returns the value", async () => {
      const out = await client().getSecretValue(ARN);
      expect(out.SecretString).to.equal('{"keys":[]}');
      expect(fake.received).to.have.length(1);
      const [request] = fake.received;
      expect(request.signatureValid, "signature checked against @smithy/signature-v4").to.equal(true);
      expect(request.headers["x-amz-target"]).to.equal("secretsmanager.GetSecretValue");
      expect(request.headers["content-type"]).to.equal("application/x-amz-json-1.1");
      expect(JSON.parse(request.body)).to.deep.equal({ SecretId: ARN });
      const day = new Date().toISOString().slice(0, 10).replace(/-/g, "");
      expect(request.headers.authorization).to.match(
        new RegExp(
          `^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/(${day}|\\d{8})/us-west-2/secretsmanager/aws4_request, ` +
            "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=[0-9a-f]{64}$",
        ),
      );
    });

    it("sends the session token of temporary credentials, and none for long-term ones", async () => {
      await client().getSecretValue(ARN);
      expect(fake.received[0].headers["x-amz-security-token"]).to.equal(CREDENTIALS.sessionToken);
      await client({ credentials: { ...CREDENTIALS, sessionToken: undefined } }).getSecretValue(ARN);
      expect(fake.received[1].headers).to.not.have.property("x-amz-security-token");
      expect(fake.received[1].signatureValid).to.equal(true);
    });

    it("is refused by the service when signed with another secret key (the fake's check bites)", async () => {
      const error = await rejection(
        client({ credentials: { ...CREDENTIALS, secretAccessKey: "not-the-key" } }).getSecretValue(ARN),
      );
      expect(fake.received[0].signatureValid).to.equal(false);
      expect(error).to.be.instanceOf(SecretsManagerError);
      expect((error as SecretsManagerError).code).to.equal("InvalidSignatureException");
      expect(fake.received, "not retried").to.have.length(1);
    });

    it("keeps its connection alive between calls", async () => {
      const made = client();
      await made.getSecretValue(ARN);
      await made.getSecretValue(ARN);
      expect(fake.received).to.have.length(2);
      expect(fake.received[1].socket).to.equal(fake.received[0].socket);
    });
  });

  describe("errors", () => {
    for (const [code, status] of [
      ["ResourceNotFoundException", 400],
      ["AccessDeniedException", 400],
      ["DecryptionFailure", 400],
      ["InvalidRequestException", 400],
      ["InvalidParameterException", 400],
    ] as const) {
      it(`names ${code} by its AWS code and does not retry it`, async () => {
        fake.script.push(json(status, { __type: code, message: `fake ${code}` }));
        const error = await rejection(client().getSecretValue(ARN));
        expect(error).to.be.instanceOf(SecretsManagerError);
        expect(error.name).to.equal(code);
        expect((error as SecretsManagerError).code).to.equal(code);
        expect((error as SecretsManagerError).statusCode).to.equal(status);
        expect((error as SecretsManagerError).retryable).to.equal(false);
        expect(error.message).to.equal(`fake ${code}`);
        expect(fake.received).to.have.length(1);
      });
    }

    it("reads the code from x-amzn-errortype or a namespaced __type as the SDK does", async () => {
      fake.script.push(
        json(
          400,
          { message: "denied" },
          { "x-amzn-errortype": "AccessDeniedException:http://internal.example/" },
        ),
      );
      expect((await rejection(client().getSecretValue(ARN))).name).to.equal("AccessDeniedException");
      fake.script.push(
        json(400, { __type: "com.amazonaws.secretsmanager#DecryptionFailure", Message: "kms" }),
      );
      const error = await rejection(client().getSecretValue(ARN));
      expect(error.name).to.equal("DecryptionFailure");
      expect(error.message).to.equal("kms");
    });

    for (const [what, answer] of [
      ["a 500 InternalServiceError", json(500, { __type: "InternalServiceError", message: "fake outage" })],
      ["a 503 without a JSON body", { status: 503, body: "<html>unavailable</html>" }],
      ["a ThrottlingException", json(400, { __type: "ThrottlingException", message: "Rate exceeded" })],
      ["a 429", json(429, { __type: "TooManyRequests", message: "slow down" })],
      ["a connection dropped mid-answer", "drop"],
    ] as const) {
      it(`retries ${what} once, then answers with the second attempt`, async () => {
        fake.script.push(answer);
        expect((await client().getSecretValue(ARN)).SecretString).to.equal('{"keys":[]}');
        expect(fake.received).to.have.length(2);
      });
    }

    it("gives up after two attempts, with the last error", async () => {
      const outage = json(500, { __type: "InternalServiceError", message: "fake outage" });
      fake.script.push(outage, outage, outage);
      const error = await rejection(client().getSecretValue(ARN));
      expect(error.name).to.equal("InternalServiceError");
      expect((error as SecretsManagerError).retryable).to.equal(true);
      expect(fake.received).to.have.length(2);
    });

    it("gives up on a service that never answers within the request timeout, twice", async () => {
      fake.script.push("hang", "hang");
      const started = performance.now();
      const error = await rejection(client().getSecretValue(ARN));
      const elapsed = performance.now() - started;
      expect(error.name).to.equal("TimeoutError");
      expect(fake.received).to.have.length(2);
      expect(elapsed).to.be.within(800, 2500);
    });

    it("fails a refused connection with its socket code after retrying it", async () => {
      const made = client();
      await fake.stop();
      const error = await rejection(made.getSecretValue(ARN));
      expect((error as SecretsManagerError).code).to.equal("ECONNREFUSED");
      expect((error as SecretsManagerError).retryable).to.equal(true);
    });

    it("does not repeat a malformed answer's text in its error (it may hold the secret)", async () => {
      fake.script.push({ status: 200, body: '{"SecretString":"hunter2-not-json' });
      const error = await rejection(client().getSecretValue(ARN));
      expect(error.name).to.equal("SerializationException");
      expect(JSON.stringify(describeCause(error))).to.not.include("hunter2");
    });

    it("never carries the credentials in an error", async () => {
      fake.script.push(json(400, { __type: "AccessDeniedException", message: "denied" }));
      const error = await rejection(client().getSecretValue(ARN));
      const logged = JSON.stringify(describeCause(error)) + String(error.stack);
      expect(logged).to.not.include(CREDENTIALS.secretAccessKey);
      expect(logged).to.not.include(CREDENTIALS.sessionToken);
    });
  });

  describe("fromEnv", () => {
    const env = {
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
      AWS_SESSION_TOKEN: CREDENTIALS.sessionToken,
    };

    it("signs with the credentials and region of the environment, at the endpoint it names", async () => {
      const made = SecretsManagerClient.fromEnv({ ...env, AWS_ENDPOINT_URL_SECRETS_MANAGER: fake.endpoint });
      clients.push(made);
      expect((await made.getSecretValue(ARN)).SecretString).to.equal('{"keys":[]}');
      expect(fake.received[0].signatureValid).to.equal(true);
      expect(fake.received[0].headers["x-amz-security-token"]).to.equal(CREDENTIALS.sessionToken);
    });

    it("fails naming the variables when there are no credentials", () => {
      expect(() => SecretsManagerClient.fromEnv({ AWS_REGION: REGION }))
        .to.throw(MissingCredentialsError)
        .with.property("message")
        .that.includes("AWS_ACCESS_KEY_ID");
    });

    it("fails naming AWS_REGION when there is no region", () => {
      const { AWS_REGION: _region, ...withoutRegion } = env;
      expect(() => SecretsManagerClient.fromEnv(withoutRegion)).to.throw(/AWS_REGION/);
    });
  });

  describe("secretsManagerEndpoint", () => {
    it("is the region's public endpoint by default", () => {
      expect(secretsManagerEndpoint({}, "us-west-2")).to.equal(
        "https://secretsmanager.us-west-2.amazonaws.com",
      );
      expect(secretsManagerEndpoint({}, "cn-north-1")).to.equal(
        "https://secretsmanager.cn-north-1.amazonaws.com.cn",
      );
    });

    it("honours AWS_ENDPOINT_URL_SECRETS_MANAGER over AWS_ENDPOINT_URL", () => {
      expect(secretsManagerEndpoint({ AWS_ENDPOINT_URL: "http://a.test" }, "us-west-2")).to.equal(
        "http://a.test",
      );
      expect(
        secretsManagerEndpoint(
          { AWS_ENDPOINT_URL: "http://a.test", AWS_ENDPOINT_URL_SECRETS_MANAGER: "http://b.test" },
          "us-west-2",
        ),
      ).to.equal("http://b.test");
    });
  });
});

describe("secrets-manager in the code Pulumi serializes into a function", function () {
  // Loading @pulumi/pulumi and serializing take seconds.
  this.timeout(60_000);
  const saved = { ...process.env };
  let fake: VerifyingSecretsManager;
  let dir: string;
  let fetchSecret: (ref: string) => Promise<string>;

  before(async () => {
    fake = new VerifyingSecretsManager();
    await fake.start();
    fake.values.set(ARN, '{"keys":["serialized"]}');
    const pulumi = await import("@pulumi/pulumi");
    // The factory a handler's callbackFactory would be: a source made once per container.
    const serialized = await pulumi.runtime.serializeFunction(
      () => {
        const source = new SecretsManagerSource();
        return (ref: string) => source.fetch(ref);
      },
      { isFactoryFunction: true },
    );
    // Inside the repository (git-ignored) so that the generated code's requires resolve.
    const cache = join(__dirname, "..", "..", "node_modules", ".cache");
    mkdirSync(cache, { recursive: true });
    dir = mkdtempSync(join(cache, "wallcrawler-serialized-secrets-"));
    writeFileSync(join(dir, "index.js"), serialized.text);
    Object.assign(process.env, {
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
      AWS_SESSION_TOKEN: CREDENTIALS.sessionToken,
      AWS_ENDPOINT_URL_SECRETS_MANAGER: fake.endpoint,
    });
    fetchSecret = require(join(dir, "index.js")).handler as (ref: string) => Promise<string>;
  });

  after(async () => {
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
    if (dir) {
      delete require.cache[join(dir, "index.js")];
      rmSync(dir, { recursive: true, force: true });
    }
    await fake.stop();
  });

  it("does not carry the SDK client, and fetches a signed value", async () => {
    const text = readFileSync(join(dir, "index.js"), "utf8");
    expect(text).to.not.include("@aws-sdk/client-secrets-manager");
    expect(await fetchSecret(ARN)).to.equal('{"keys":["serialized"]}');
    expect(fake.received.at(-1)!.signatureValid).to.equal(true);
  });

  it("keeps its errors' codes and messages, and retries a 500", async () => {
    fake.script.push(json(400, { __type: "AccessDeniedException", message: "not authorized" }));
    const denied = await rejection(fetchSecret(ARN));
    expect(denied.name).to.equal("AccessDeniedException");
    expect(denied.message).to.equal("not authorized");
    const before = fake.received.length;
    fake.script.push(json(500, { __type: "InternalServiceError", message: "fake outage" }));
    expect(await fetchSecret(ARN)).to.equal('{"keys":["serialized"]}');
    expect(fake.received.length - before).to.equal(2);
  });
});
