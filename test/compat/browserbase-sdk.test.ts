/**
 * Compatibility with the official, unmodified Browserbase SDK (`@browserbasehq/sdk`), pointed at
 * the local stack with nothing changed but `baseURL` and the API key. Covers every Sessions
 * route it calls (create, retrieve, list with `status` and `q`, debug, update to
 * REQUEST_RELEASE), its error classes, how its retry rules meet the API's `x-should-retry`,
 * `Retry-After` and `Idempotency-Key`, and that the parts of the Browserbase API WallCrawler does
 * not implement fail fast with a clean NotFoundError. Response shapes are checked against the
 * SDK's type definitions (support.ts mirrors them), since the SDK checks nothing at run time.
 */
import { randomUUID } from "node:crypto";
import Browserbase, {
  AuthenticationError,
  BadRequestError,
  ConflictError,
  NotFoundError,
  RateLimitError,
  toFile,
} from "@browserbasehq/sdk";
import { expect } from "chai";
import {
  expectSdkLiveUrls,
  expectSdkSession,
  rejectionOf,
  startCompatStack,
  startFaultProxy,
  type CompatProject,
  type CompatStack,
  type Fault,
  type FaultProxy,
} from "./support";
import { extensionZip } from "../support/zips";

describe("compat: @browserbasehq/sdk against the local stack", function () {
  this.timeout(15000);

  let world: CompatStack;
  /** The main project; `other` is a second project; `limited` allows one live session, `retrying` too. */
  let main: CompatProject;
  let other: CompatProject;
  let limited: CompatProject;
  let retrying: CompatProject;
  let bb: Browserbase;

  const client = (project: CompatProject, options: { baseURL?: string; maxRetries?: number } = {}) =>
    new Browserbase({
      apiKey: project.apiKey,
      baseURL: options.baseURL ?? world.url,
      maxRetries: options.maxRetries ?? 2,
    });
  const createsOf = (project: CompatProject) =>
    world.requestsOf(project).filter((req) => req.method === "POST" && req.url === "/v1/sessions");

  before(async () => {
    world = await startCompatStack({ projects: [{}, {}, { concurrency: 1 }, { concurrency: 1 }] });
    [main, other, limited, retrying] = world.projects;
    bb = client(main);
  });
  after(() => world.stop());

  describe("sessions", () => {
    it("create sends api_timeout as timeout and returns a SessionCreateResponse", async () => {
      const proxy = await startFaultProxy(world.url, () => "pass");
      const context = await bb.contexts.create();
      try {
        const viaProxy = client(main, { baseURL: proxy.url });
        const params: Browserbase.SessionCreateParams = {
          api_timeout: 120,
          keepAlive: true,
          region: "us-west-2",
          userMetadata: { order: "42", customer: { tier: "gold" } },
          browserSettings: {
            viewport: { width: 1280, height: 800 },
            context: { id: context.id, persist: true },
            blockAds: true,
            solveCaptchas: false,
            recordSession: false,
            logSession: false,
            os: "linux",
            advancedStealth: false,
          },
        };
        const created: Browserbase.SessionCreateResponse = await viaProxy.sessions.create(params);

        const wire = proxy.seen.find((req) => req.method === "POST" && req.url === "/v1/sessions")!;
        expect(wire.headers["x-bb-api-key"]).to.equal(main.apiKey);
        const body = JSON.parse(wire.body!);
        expect(body.timeout).to.equal(120);
        expect(body).to.not.have.property("api_timeout");
        expect(body.userMetadata).to.deep.equal(params.userMetadata);
        expect(body.browserSettings).to.deep.equal(params.browserSettings);

        expectSdkSession(created, "created");
        expect(created.status).to.equal("RUNNING");
        expect(created.projectId).to.equal(main.projectId);
        expect(created.region).to.equal("us-west-2");
        expect(created.keepAlive).to.equal(true);
        expect(created.proxyBytes).to.equal(0);
        expect(created.contextId).to.equal(context.id);
        expect(created.userMetadata).to.deep.equal(params.userMetadata);
        expect(Date.parse(created.expiresAt) - Date.parse(created.createdAt)).to.be.within(120_000, 120_999);
        expect(created.connectUrl).to.match(
          /^ws:\/\/127\.0\.0\.1:\d+\/v1\/sessions\/[0-9a-f-]{36}\/connect\?signingKey=/,
        );
        expect(created.connectUrl).to.include(created.id).and.include(created.signingKey);
        expect(created.seleniumRemoteUrl).to.match(/^http:\/\//);
      } finally {
        await proxy.close();
      }
    });

    it("create with no parameters uses the defaults", async () => {
      const created = await bb.sessions.create();
      expectSdkSession(created, "created");
      expect(created.keepAlive).to.equal(false);
      expect(created).to.not.have.property("userMetadata");
      expect(Date.parse(created.expiresAt) - Date.parse(created.createdAt)).to.be.within(300_000, 300_999);
      await bb.sessions.update(created.id, { status: "REQUEST_RELEASE" });
    });

    it("retrieve returns a SessionRetrieveResponse without the signing key", async () => {
      const created = await bb.sessions.create({ userMetadata: { job: "retrieve" } });
      const got: Browserbase.SessionRetrieveResponse = await bb.sessions.retrieve(created.id);
      expectSdkSession(got, "retrieved");
      expect(got.id).to.equal(created.id);
      expect(got.status).to.equal("RUNNING");
      expect(got.userMetadata).to.deep.equal({ job: "retrieve" });
      expect(got.createdAt).to.equal(created.createdAt);
      expect(JSON.stringify(got)).to.not.include(created.signingKey);
      // Upper-case ids are the same session.
      expect((await bb.sessions.retrieve(created.id.toUpperCase())).id).to.equal(created.id);
    });

    it("update to REQUEST_RELEASE ends the session; again returns it unchanged", async () => {
      const created = await bb.sessions.create();
      const released: Browserbase.Session = await bb.sessions.update(created.id, {
        status: "REQUEST_RELEASE",
        projectId: main.projectId,
      });
      expectSdkSession(released);
      expect(released.status).to.equal("COMPLETED");
      expect(released.endedAt).to.be.a("string");
      const again = await bb.sessions.update(created.id, { status: "REQUEST_RELEASE" });
      expect(again).to.deep.equal(released);
      const got = await bb.sessions.retrieve(created.id);
      expect(got.status).to.equal("COMPLETED");
      expect(got.endedAt).to.equal(released.endedAt);
    });

    it("list filters by status and by the user-metadata query q, newest first", async () => {
      const project = world.projects[1];
      const sdk = client(project);
      const red1 = await sdk.sessions.create({ userMetadata: { team: "red", order: "1" } });
      const red2 = await sdk.sessions.create({
        userMetadata: { team: "red", order: "2", customer: { tier: "gold" } },
      });
      const blue = await sdk.sessions.create({ userMetadata: { team: "blue", order: "3" } });
      await sdk.sessions.update(blue.id, { status: "REQUEST_RELEASE" });
      const ids = (list: Browserbase.SessionListResponse) => list.map((s) => s.id);

      const all: Browserbase.SessionListResponse = await sdk.sessions.list();
      for (const session of all) expectSdkSession(session);
      expect(ids(all)).to.include.members([red1.id, red2.id, blue.id]);
      const created = all.map((s) => Date.parse(s.createdAt));
      expect(created).to.deep.equal([...created].sort((a, b) => b - a));
      expect(JSON.stringify(all)).to.not.match(/signingKey|connectUrl/);

      expect(ids(await sdk.sessions.list({ status: "RUNNING" }))).to.have.members([red1.id, red2.id]);
      expect(ids(await sdk.sessions.list({ status: "COMPLETED" }))).to.deep.equal([blue.id]);
      expect(await sdk.sessions.list({ status: "ERROR" })).to.deep.equal([]);
      expect(ids(await sdk.sessions.list({ q: "user_metadata['team']:'red'" }))).to.have.members([
        red1.id,
        red2.id,
      ]);
      expect(
        ids(await sdk.sessions.list({ q: "user_metadata['team']:'red' AND user_metadata['order']:'2'" })),
      ).to.deep.equal([red2.id]);
      expect(ids(await sdk.sessions.list({ q: "user_metadata['customer']['tier']:'gold'" }))).to.deep.equal([
        red2.id,
      ]);
      expect(
        ids(await sdk.sessions.list({ q: "user_metadata['team']:'blue'", status: "COMPLETED" })),
      ).to.deep.equal([blue.id]);
      expect(await sdk.sessions.list({ q: "user_metadata['team']:'blue'", status: "RUNNING" })).to.deep.equal(
        [],
      );

      const bad = await rejectionOf(sdk.sessions.list({ q: "team = red" }));
      expect(bad).to.be.instanceOf(BadRequestError);
      expect(bad.message).to.match(/^400 q is not a valid user-metadata query/);
      for (const session of [red1, red2])
        await sdk.sessions.update(session.id, { status: "REQUEST_RELEASE" });
    });

    it("debug returns SessionLiveURLs; pages follow the SDK's Page type; an ended session is a 400", async () => {
      const created = await bb.sessions.create({ api_timeout: 600 });
      const live: Browserbase.SessionLiveURLs = await bb.sessions.debug(created.id);
      expectSdkLiveUrls(live);
      expect(live.pages).to.deep.equal([]);
      expect(live.debuggerUrl).to.include(created.id);
      const short = await bb.sessions.debug(created.id, { expiresIn: 60 });
      expectSdkLiveUrls(short);

      // Pages as the connect host reports them (the local connect server, or the Proxy deployed).
      const pagesBefore = world.stack.runtime.pages;
      world.stack.runtime.pages = async () => [
        { id: "page-1", url: "https://example.com/", title: "Example" },
      ];
      try {
        const withPages = await bb.sessions.debug(created.id);
        expectSdkLiveUrls(withPages);
        expect(withPages.pages).to.have.length(1);
        expect(withPages.pages[0]).to.include({
          id: "page-1",
          url: "https://example.com/",
          title: "Example",
        });
      } finally {
        world.stack.runtime.pages = pagesBefore;
      }

      await bb.sessions.update(created.id, { status: "REQUEST_RELEASE" });
      const ended = await rejectionOf(bb.sessions.debug(created.id));
      expect(ended).to.be.instanceOf(BadRequestError);
      expect(ended.message).to.match(/^400 session .* has ended \(COMPLETED\)/);
    });

    it("another project's session is a NotFoundError on every route, like an unknown id", async () => {
      const mine = await bb.sessions.create({ userMetadata: { owner: "main" } });
      const stranger = client(other);
      for (const call of [
        () => stranger.sessions.retrieve(mine.id),
        () => stranger.sessions.update(mine.id, { status: "REQUEST_RELEASE" }),
        () => stranger.sessions.debug(mine.id),
      ]) {
        const error = await rejectionOf(call());
        expect(error).to.be.instanceOf(NotFoundError);
        expect(error.message).to.equal(`404 session ${mine.id} not found`);
      }
      expect(
        (await stranger.sessions.list({ q: "user_metadata['owner']:'main'" })).map((s) => s.id),
      ).to.not.include(mine.id);
      expect((await bb.sessions.retrieve(mine.id)).status).to.equal("RUNNING");
      await bb.sessions.update(mine.id, { status: "REQUEST_RELEASE" });
    });
  });

  describe("errors", () => {
    it("400 BadRequestError names the field; a timeout in milliseconds says so", async () => {
      const error = await rejectionOf(bb.sessions.create({ api_timeout: 10 }));
      expect(error).to.be.instanceOf(BadRequestError);
      const apiError = error as BadRequestError;
      expect(apiError.status).to.equal(400);
      expect(apiError.error).to.deep.equal({
        statusCode: 400,
        error: "Bad Request",
        message: "timeout: must be at least 60 seconds",
      });
      expect(apiError.message).to.equal("400 timeout: must be at least 60 seconds");

      const millis = await rejectionOf(bb.sessions.create({ api_timeout: 300000 }));
      expect(millis).to.be.instanceOf(BadRequestError);
      expect(millis.message).to.match(
        /^400 timeout: is in seconds .*300000 looks like milliseconds, send 300$/,
      );

      const update = await rejectionOf(
        bb.sessions.update(randomUUID(), { status: "RUNNING" } as unknown as Browserbase.SessionUpdateParams),
      );
      expect(update).to.be.instanceOf(BadRequestError);
      expect(update.message).to.match(/^400 status: must be "REQUEST_RELEASE"/);
    });

    it("401 AuthenticationError for an unknown or malformed key, without retries", async () => {
      const before = world.requests.length;
      const unknown = new Browserbase({ apiKey: "wc_" + "A".repeat(43), baseURL: world.url });
      const error = await rejectionOf(unknown.sessions.list());
      expect(error).to.be.instanceOf(AuthenticationError);
      expect(error.message).to.equal("401 Invalid API key.");
      const malformed = new Browserbase({ apiKey: "bb_live_not-a-wallcrawler-key", baseURL: world.url });
      const second = await rejectionOf(malformed.sessions.create());
      expect(second).to.be.instanceOf(AuthenticationError);
      expect(second.message).to.match(/^401 Malformed API key/);
      expect(world.requests.length - before).to.equal(2);
    });

    it("404 NotFoundError for an unknown session id", async () => {
      const id = randomUUID();
      const error = await rejectionOf(bb.sessions.retrieve(id));
      expect(error).to.be.instanceOf(NotFoundError);
      expect(error.message).to.equal(`404 session ${id} not found`);
      expect(await rejectionOf(bb.sessions.retrieve("not-a-session-id"))).to.be.instanceOf(NotFoundError);
    });

    it("429 RateLimitError at the concurrency limit: Retry-After set, and the SDK does not retry a long wait", async () => {
      const sdk = client(limited, { maxRetries: 5 });
      const first = await sdk.sessions.create();
      const started = Date.now();
      const error = await rejectionOf(sdk.sessions.create());
      // A retry would first wait out Retry-After (minutes here); the bound is far below that.
      expect(Date.now() - started).to.be.below(10_000);
      expect(error).to.be.instanceOf(RateLimitError);
      const limitError = error as RateLimitError;
      expect(limitError.message).to.match(
        /^429 project \S+ is at its limit of 1 concurrent session; release a session/,
      );
      expect(Number(limitError.headers?.["retry-after"])).to.be.within(290, 301);
      expect(limitError.headers?.["x-should-retry"]).to.equal("false");
      expect(createsOf(limited)).to.have.length(2);

      // Releasing frees the slot at once.
      await sdk.sessions.update(first.id, { status: "REQUEST_RELEASE" });
      const next = await sdk.sessions.create();
      await sdk.sessions.update(next.id, { status: "REQUEST_RELEASE" });
    });

    it("429 with a short wait: the SDK honours Retry-After and its retry gets the freed slot", async () => {
      const sdk = client(retrying);
      const first = await sdk.sessions.create({ api_timeout: 60 });
      const expiresAt = Date.parse(first.expiresAt);
      const realNow = world.stack.runtime.now;
      // Move the stack's clock so the first session has 1.5 s left: Retry-After 2, x-should-retry true.
      const shift = expiresAt - 1500 - Date.now();
      world.stack.runtime.now = () => Date.now() + shift;
      try {
        const started = Date.now();
        const second = await sdk.sessions.create({ api_timeout: 60 });
        // Retry-After is 2 (or 1 on a slow machine): the SDK waited for it, not for its own backoff.
        expect(Date.now() - started).to.be.at.least(900);
        expectSdkSession(second, "created");
        const attempts = createsOf(retrying).slice(1);
        expect(attempts.map((req) => req.headers["x-stainless-retry-count"])).to.deep.equal(["0", "1"]);
        expect((await sdk.sessions.retrieve(first.id)).status).to.equal("TIMED_OUT");
      } finally {
        world.stack.runtime.now = realNow;
      }
    });
  });

  describe("idempotent create", () => {
    const idem = (key: string) => ({ headers: { "Idempotency-Key": key } });

    it("the same Idempotency-Key and body replays the first response", async () => {
      const key = `compat-${randomUUID()}`;
      const params = { api_timeout: 120, userMetadata: { idem: key } };
      const first = await bb.sessions.create(params, idem(key));
      const { data: again, response } = await bb.sessions.create(params, idem(key)).withResponse();
      expect(response.status).to.equal(201);
      expect(response.headers.get("idempotent-replayed")).to.equal("true");
      expectSdkSession(again, "created");
      expect(again.id).to.equal(first.id);
      expect(await bb.sessions.list({ q: `user_metadata['idem']:'${key}'` })).to.have.length(1);
    });

    it("20 concurrent SDK creates with one Idempotency-Key make one session", async () => {
      const key = `compat-${randomUUID()}`;
      const params = { userMetadata: { concurrent: key } };
      const results = await Promise.all(
        Array.from({ length: 20 }, () => bb.sessions.create(params, idem(key))),
      );
      expect(new Set(results.map((session) => session.id)).size).to.equal(1);
      const listed = await bb.sessions.list({ q: `user_metadata['concurrent']:'${key}'` });
      expect(listed.map((session) => session.id)).to.deep.equal([results[0].id]);
      await bb.sessions.update(results[0].id, { status: "REQUEST_RELEASE" });
    });

    it("409 ConflictError for the same key with another body, and the SDK does not retry it", async () => {
      const key = `compat-${randomUUID()}`;
      await bb.sessions.create({ userMetadata: { idem: key } }, idem(key));
      const before = createsOf(main).length;
      const error = await rejectionOf(
        bb.sessions.create({ userMetadata: { idem: key, changed: true } }, idem(key)),
      );
      expect(error).to.be.instanceOf(ConflictError);
      expect(error.message).to.equal(
        "409 Idempotency-Key was already used with a different request body; use a new key",
      );
      expect((error as ConflictError).headers?.["x-should-retry"]).to.equal("false");
      expect(createsOf(main).length - before).to.equal(1);
    });

    const retried = async (fault: Exclude<Fault, "pass">, withKey: boolean) => {
      let faulted = false;
      const proxy: FaultProxy = await startFaultProxy(world.url, (req) => {
        if (faulted || req.method !== "POST" || req.url !== "/v1/sessions") return "pass";
        faulted = true;
        return fault;
      });
      try {
        const tag = randomUUID();
        const sdk = client(main, { baseURL: proxy.url });
        const created = await sdk.sessions.create(
          { userMetadata: { retried: tag } },
          withKey ? idem(`compat-${tag}`) : undefined,
        );
        const creates = proxy.seen.filter((req) => req.method === "POST" && req.url === "/v1/sessions");
        expect(creates.map((req) => req.headers["x-stainless-retry-count"])).to.deep.equal(["0", "1"]);
        expect(proxy.lost).to.have.length(1);
        expect(proxy.lost[0].status).to.equal(201);
        const listed = await bb.sessions.list({ q: `user_metadata['retried']:'${tag}'` });
        return { created, lostId: JSON.parse(proxy.lost[0].body).id as string, listed };
      } finally {
        await proxy.close();
      }
    };

    it("the SDK's retry after a lost response gets the first session, not a second one", async () => {
      const { created, lostId, listed } = await retried("drop", true);
      expect(created.id).to.equal(lostId);
      expect(listed.map((s) => s.id)).to.deep.equal([lostId]);
    });

    it("the SDK's retry after a 503 from the gateway gets the first session, not a second one", async () => {
      const { created, lostId, listed } = await retried("503", true);
      expect(created.id).to.equal(lostId);
      expect(listed.map((s) => s.id)).to.deep.equal([lostId]);
    });

    it("without an Idempotency-Key the same retry leaks a session (the SDK sends no key by itself)", async () => {
      const { created, lostId, listed } = await retried("drop", false);
      expect(created.id).to.not.equal(lostId);
      expect(listed.map((s) => s.id)).to.have.members([created.id, lostId]);
    });

    it("the SDK's idempotencyKey request option sends no header: callers must set Idempotency-Key themselves", async () => {
      const proxy = await startFaultProxy(world.url, () => "pass");
      try {
        const sdk = client(main, { baseURL: proxy.url });
        const created = await sdk.sessions.create({}, { idempotencyKey: "compat-ignored" });
        const wire = proxy.seen.find((req) => req.method === "POST")!;
        expect(Object.keys(wire.headers).filter((name) => /idempotency/i.test(name))).to.deep.equal([]);
        await bb.sessions.update(created.id, { status: "REQUEST_RELEASE" });
      } finally {
        await proxy.close();
      }
    });
  });

  describe("extensions", () => {
    it("create uploads a .zip as multipart and returns an Extension; retrieve returns the same; delete makes it a NotFoundError", async () => {
      const created = await bb.extensions.create({
        file: await toFile(await extensionZip(), "my-extension.zip"),
      });
      expect(Object.keys(created).sort()).to.deep.equal([
        "createdAt",
        "fileName",
        "id",
        "projectId",
        "updatedAt",
      ]);
      expect(created).to.include({ fileName: "my-extension.zip", projectId: main.projectId });
      expect(await bb.extensions.retrieve(created.id)).to.deep.equal(created);

      // A session can carry it (Stagehand passes the id it got back as extensionId).
      const session = await bb.sessions.create({ extensionId: created.id });
      await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });

      // Stagehand deletes with a null Content-Type header and no body.
      await bb.extensions.delete(created.id, { headers: { "Content-Type": null } });
      const gone = await rejectionOf(bb.extensions.retrieve(created.id));
      expect(gone).to.be.instanceOf(NotFoundError);
      expect(gone.message).to.equal(`404 extension ${created.id} not found`);
    });

    it("keeps each project's extensions to itself: another project's key gets NotFoundError on retrieve and delete, and cannot use it", async () => {
      const created = await bb.extensions.create({ file: await toFile(await extensionZip(), "ext.zip") });
      const stranger = client(other, { maxRetries: 0 });
      expect(await rejectionOf(stranger.extensions.retrieve(created.id))).to.be.instanceOf(NotFoundError);
      expect(await rejectionOf(stranger.extensions.delete(created.id))).to.be.instanceOf(NotFoundError);
      const refused = await rejectionOf(stranger.sessions.create({ extensionId: created.id }));
      expect(refused).to.be.instanceOf(BadRequestError);
      expect(refused.message).to.match(/^400 extensionId .* is not an extension of this project/);
      expect((await bb.extensions.retrieve(created.id)).id).to.equal(created.id);
      await bb.extensions.delete(created.id);
    });

    it("a bad upload is a BadRequestError that names the problem, and is not retried", async () => {
      const before = world.requests.length;
      const error = await rejectionOf(
        bb.extensions.create({ file: await toFile(Buffer.from("not a zip"), "x.zip") }),
      );
      expect(error).to.be.instanceOf(BadRequestError);
      expect(error.message).to.match(/^400 file is not a \.zip archive/);
      expect(world.requests.length - before).to.equal(1);
    });
  });

  describe("Browserbase API surface WallCrawler does not implement", () => {
    it("answers each with a NotFoundError at once (one request, no retries)", async () => {
      const session = await bb.sessions.create();
      const calls: [string, () => Promise<unknown>][] = [
        ["sessions.recording.retrieve", () => bb.sessions.recording.retrieve(session.id)],
        ["sessions.replays.retrieve", () => bb.sessions.replays.retrieve(session.id)],
        ["search.web", () => bb.search.web({ query: "wallcrawler" })],
        ["fetchAPI.create", () => bb.fetchAPI.create({ url: "https://example.com/" })],
        ["certificates.list", () => bb.certificates.list()],
        ["secrets.list", () => bb.secrets.list()],
        ["webhooks.list", () => bb.webhooks.list()],
        ["agents.list", () => bb.agents.list()],
      ];
      for (const [name, call] of calls) {
        const before = world.requests.length;
        const error = await rejectionOf(call());
        expect(error, name).to.be.instanceOf(NotFoundError);
        expect(error.message, name).to.match(/^404 no route for (GET|POST|PUT|PATCH|DELETE) \/v1\//);
        expect(error.message, name).to.match(
          /docs\/openapi\.json; the local stack serves it at \/openapi\.json/,
        );
        expect(world.requests.length - before, name).to.equal(1);
      }
      await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });
    });
  });
});
