import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { generateApiKey } from "../../lib/apikeys";
import { createMemoryLogger } from "../../lib/logger";
import { addApiKeyEntry, ensureSecretsFile, secretsPath, upsertProject } from "../../local/secrets-file";
import { startLocalStack, type LocalStack } from "../../local/stack";
import { uniqueProject } from "../support/fixtures";
import { sharedRedis } from "../support/redis";

/** A request as a server saw it. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** Only recorded by the fault proxy (the stack's own recorder does not read bodies). */
  body?: string;
}

export interface CompatProject {
  projectId: string;
  apiKey: string;
}

export interface CompatStack {
  stack: LocalStack;
  url: string;
  /** Every request the stack's HTTP server received, in order. */
  requests: SeenRequest[];
  /** One project (and API key) per entry of the `projects` option. */
  projects: CompatProject[];
  /** Requests made with this API key (the key is never printed). */
  requestsOf(project: CompatProject): SeenRequest[];
  stop(): Promise<void>;
}

/** Resolves to the rejection of `promise`, failing the test if it fulfils. */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected the call to fail, but it succeeded");
}

/** A port nothing listens on: connectUrls point here, so a client's WebSocket dial fails at once. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", () => done()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

/**
 * The local stack on a free port with a fresh secrets file holding one API key per requested
 * project (written before the stack starts, so no key waits for the secret cache's refresh).
 * No connect server: connectUrls name a closed port.
 */
export async function startCompatStack(
  options: { projects: { concurrency?: number }[]; env?: Record<string, string> } = { projects: [{}] },
): Promise<CompatStack> {
  const home = mkdtempSync(join(tmpdir(), "wc-compat-"));
  const secretsFile = secretsPath(home);
  ensureSecretsFile(secretsFile);
  const projects = options.projects.map(({ concurrency }) => {
    const projectId = uniqueProject("compat");
    const { key, entry } = generateApiKey(projectId, { name: "compat test" });
    addApiKeyEntry(secretsFile, entry);
    if (concurrency !== undefined) upsertProject(secretsFile, projectId, { concurrency });
    return { projectId, apiKey: key };
  });
  // `connect: false` keeps the local connect server (where the stack has one) from starting.
  const stackOptions: Parameters<typeof startLocalStack>[0] & { connect?: boolean } = {
    port: 0,
    home,
    redisUrl: (await sharedRedis()).url,
    connect: false,
    logger: createMemoryLogger(),
    env: {
      WALLCRAWLER_REGION: "us-west-2",
      ALB_DNS_NAME: `127.0.0.1:${await closedPort()}`,
      CONNECT_SCHEME: "ws",
      ...options.env,
    },
  };
  const stack = await startLocalStack(stackOptions);
  const requests: SeenRequest[] = [];
  stack.server.on("request", (req) => {
    requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
  });
  return {
    stack,
    url: stack.url,
    requests,
    projects,
    requestsOf: (project) => requests.filter((req) => req.headers["x-bb-api-key"] === project.apiKey),
    stop: async () => {
      await stack.stop();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** What the fault proxy does with one request. */
export type Fault =
  /** Forward it and relay the answer. */
  | "pass"
  /** Forward it, then drop the connection instead of answering (a response lost on the way back). */
  | "drop"
  /** Forward it, then answer 503 (a gateway that gave up although the function finished). */
  | "503";

export interface FaultProxy {
  url: string;
  /** Every request received, with its body. */
  seen: SeenRequest[];
  /** The upstream answers to requests whose response was dropped or replaced, in order. */
  lost: { status: number; body: string }[];
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set([
  "host",
  "connection",
  "keep-alive",
  "content-length",
  "transfer-encoding",
  "content-encoding",
  "expect",
]);

/**
 * An HTTP proxy in front of the stack that forwards every request and then, as `faultFor`
 * decides, relays the answer, drops the connection, or answers 503: the failures after which
 * an SDK retries a create that the server has already carried out.
 */
export async function startFaultProxy(
  target: string,
  faultFor: (req: SeenRequest) => Fault,
): Promise<FaultProxy> {
  const seen: SeenRequest[] = [];
  const lost: { status: number; body: string }[] = [];
  const server: Server = createServer(async (req, res) => {
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const raw = Buffer.concat(chunks);
      // Recorded as text; forwarded as the bytes received (uploads are binary).
      const body = raw.toString("utf8");
      const request: SeenRequest = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body,
      };
      seen.push(request);
      const fault = faultFor(request);
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = String(value);
      }
      const upstream = await fetch(target + request.url, {
        method: request.method,
        headers,
        body: raw.length === 0 ? undefined : raw,
      });
      const text = await upstream.text();
      if (fault === "drop") {
        lost.push({ status: upstream.status, body: text });
        req.socket.destroy();
        return;
      }
      if (fault === "503") {
        lost.push({ status: upstream.status, body: text });
        res.writeHead(503, { "content-type": "application/json", "retry-after-ms": "10" });
        res.end(
          JSON.stringify({ statusCode: 503, error: "Service Unavailable", message: "gateway timeout" }),
        );
        return;
      }
      const out: Record<string, string> = {};
      upstream.headers.forEach((value, name) => {
        if (!HOP_BY_HOP.has(name)) out[name] = value;
      });
      res.writeHead(upstream.status, out);
      res.end(text);
    } catch {
      req.socket.destroy();
    }
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", () => done()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    lost,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}

/*
 * Run-time mirrors of the SDK's response types (node_modules/@browserbasehq/sdk/resources/sessions/
 * sessions.d.ts): the SDK checks nothing when it parses a response, so these are what its users'
 * code relies on.
 */
const SDK_REGIONS = ["us-west-2", "us-east-1", "eu-central-1", "ap-southeast-1"];
const SDK_STATUSES = ["PENDING", "RUNNING", "ERROR", "TIMED_OUT", "COMPLETED"];
const SESSION_REQUIRED = [
  "id",
  "createdAt",
  "expiresAt",
  "keepAlive",
  "projectId",
  "proxyBytes",
  "region",
  "startedAt",
  "status",
  "updatedAt",
];
const SESSION_OPTIONAL = ["contextId", "endedAt", "userMetadata"];
const CONNECTION_FIELDS = ["connectUrl", "seleniumRemoteUrl", "signingKey"];

function expectIso(value: unknown, field: string): void {
  expect(value, field).to.be.a("string");
  expect(new Date(value as string).toISOString(), field).to.equal(value);
}

function expectOnlyKeys(value: object, allowed: string[], what: string): void {
  const extra = Object.keys(value).filter((key) => !allowed.includes(key));
  expect(extra, `${what} fields the SDK does not declare`).to.deep.equal([]);
}

/**
 * Asserts `value` is a `Session` as the SDK declares it (`kind` "session"), a
 * `SessionCreateResponse` ("created": plus connectUrl, seleniumRemoteUrl, signingKey) or a
 * `SessionRetrieveResponse` ("retrieved": those three optional; WallCrawler never returns signingKey there).
 */
export function expectSdkSession(
  value: unknown,
  kind: "session" | "created" | "retrieved" = "session",
): void {
  expect(value).to.be.an("object");
  const session = value as Record<string, unknown>;
  for (const field of SESSION_REQUIRED) expect(session, field).to.have.property(field);
  expect(session.id).to.be.a("string").and.not.equal("");
  expectIso(session.createdAt, "createdAt");
  expectIso(session.expiresAt, "expiresAt");
  expectIso(session.startedAt, "startedAt");
  expectIso(session.updatedAt, "updatedAt");
  if (session.endedAt !== undefined) expectIso(session.endedAt, "endedAt");
  expect(session.keepAlive).to.be.a("boolean");
  expect(session.projectId).to.be.a("string");
  expect(session.proxyBytes).to.be.a("number");
  expect(SDK_REGIONS, "region is one the SDK's type allows").to.include(session.region);
  expect(SDK_STATUSES).to.include(session.status);
  if (session.contextId !== undefined) expect(session.contextId).to.be.a("string");
  if (session.userMetadata !== undefined) {
    expect(session.userMetadata).to.be.an("object").and.not.be.an("array");
  }
  const allowed = [...SESSION_REQUIRED, ...SESSION_OPTIONAL];
  if (kind === "created") {
    for (const field of CONNECTION_FIELDS) expect(session[field], field).to.be.a("string").and.not.equal("");
    allowed.push(...CONNECTION_FIELDS);
  }
  if (kind === "retrieved") {
    expect(session).to.not.have.property("signingKey");
    for (const field of ["connectUrl", "seleniumRemoteUrl"]) {
      if (session[field] !== undefined) expect(session[field], field).to.be.a("string");
    }
    allowed.push("connectUrl", "seleniumRemoteUrl");
  }
  expectOnlyKeys(session, allowed, kind);
}

/** Asserts `value` is the SDK's `SessionLiveURLs`, pages included. */
export function expectSdkLiveUrls(value: unknown): void {
  const urls = value as Record<string, unknown>;
  for (const field of ["debuggerUrl", "debuggerFullscreenUrl", "wsUrl"]) {
    expect(urls[field], field).to.be.a("string").and.not.equal("");
  }
  expect(urls.pages).to.be.an("array");
  expectOnlyKeys(urls, ["debuggerUrl", "debuggerFullscreenUrl", "wsUrl", "pages"], "debug");
  const pageFields = ["id", "debuggerFullscreenUrl", "debuggerUrl", "faviconUrl", "title", "url"];
  for (const page of urls.pages as Record<string, unknown>[]) {
    for (const field of pageFields) expect(page[field], `pages[].${field}`).to.be.a("string");
    expectOnlyKeys(page, pageFields, "debug page");
  }
}
