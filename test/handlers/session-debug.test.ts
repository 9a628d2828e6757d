import { expect } from "chai";
import { createSessionHandler } from "../../handlers/create-session";
import { sessionDebugHandler } from "../../handlers/session-debug";
import type { HttpHandler, HttpResult } from "../../lib/http";
import type { PageInfo, SessionDeps } from "../../lib/sessions";
import { TokenError, verifySessionToken, type TokenScope } from "../../lib/tokens";
import { apiEvent, createTestWorld, ctx, uniqueProject, type TestWorld } from "../support/fixtures";

const CONNECT_HOST = "connect.test.example";

describe("GET /v1/sessions/{id}/debug", () => {
  let world: TestWorld;
  let create: HttpHandler;

  before(async () => {
    world = await createTestWorld();
    create = createSessionHandler(world.runtime);
  });
  after(() => world.close());

  /** Deps whose clock stands still at `now` (epoch ms), and optionally a page lister. */
  const depsAt = (now: number, extra: Partial<SessionDeps> = {}): SessionDeps => ({
    ...world.runtime,
    now: () => now,
    ...extra,
  });

  const createSession = async (key: string, body: unknown = {}, handler: HttpHandler = create) => {
    const res = await handler(
      apiEvent({ method: "POST", path: "/v1/sessions", body, headers: { "X-BB-API-Key": key } }),
      ctx(),
    );
    expect(res.statusCode, res.body).to.equal(201);
    return JSON.parse(res.body);
  };

  const debug = (
    key: string,
    id: string,
    options: { expiresIn?: string; deps?: SessionDeps } = {},
  ): Promise<HttpResult> =>
    sessionDebugHandler(options.deps ?? world.runtime)(
      apiEvent({
        method: "GET",
        path: `/v1/sessions/${id}/debug`,
        routePath: "/v1/sessions/{id}/debug",
        pathParameters: { id },
        query: options.expiresIn === undefined ? undefined : { expiresIn: options.expiresIn },
        headers: { "X-BB-API-Key": key },
      }),
      ctx(),
    );

  const tokenOf = (url: string) => new URL(url).searchParams.get("signingKey") ?? "";

  const verify = (token: string, sessionId: string, scope: TokenScope) =>
    verifySessionToken(token, world.tokenKeys, {
      issuer: world.config.tokenIssuer,
      audience: world.config.tokenAudience,
      sessionId,
      scope,
    });

  it("returns debugger, fullscreen and WebSocket URLs on the connect host with one debug-scoped token", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const t = Date.now();
    const created = await createSession(key, { timeout: 600 }, createSessionHandler(depsAt(t)));

    const res = await debug(key, created.id, { expiresIn: "120", deps: depsAt(t) });
    expect(res.statusCode, res.body).to.equal(200);
    const body = JSON.parse(res.body);
    expect(Object.keys(body).sort()).to.deep.equal([
      "debuggerFullscreenUrl",
      "debuggerUrl",
      "pages",
      "wsUrl",
    ]);
    const token = tokenOf(body.debuggerUrl);
    expect(token.split(".")).to.have.length(5);
    expect(body.debuggerUrl).to.equal(
      `https://${CONNECT_HOST}/v1/sessions/${created.id}/debugger?signingKey=${token}`,
    );
    expect(body.debuggerFullscreenUrl).to.equal(`${body.debuggerUrl}&fullscreen=true`);
    expect(body.wsUrl).to.equal(`wss://${CONNECT_HOST}/v1/sessions/${created.id}/debug?signingKey=${token}`);
    expect(body.pages).to.deep.equal([]);
    expect(token).to.not.equal(created.signingKey);

    const claims = await verify(token, created.id, "debug");
    expect(claims).to.include({ sessionId: created.id, projectId: project, scope: "debug" });
    expect(claims.expiresAt).to.equal(Math.floor(t / 1000) + 120);
    expect(claims.issuedAt).to.equal(Math.floor(t / 1000));
  });

  it("makes a token the connect check refuses, so a debug link cannot drive the browser", async () => {
    const key = world.addKey(uniqueProject());
    const created = await createSession(key);
    const body = JSON.parse((await debug(key, created.id)).body);
    const error = await verify(tokenOf(body.wsUrl), created.id, "connect").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(TokenError);
    expect((error as TokenError).reason).to.equal("wrong_scope");
    // And the connect token is no debug token either.
    const reverse = await verify(created.signingKey, created.id, "debug").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((reverse as TokenError).reason).to.equal("wrong_scope");
  });

  it("caps the token's life at the session's remaining life", async () => {
    const key = world.addKey(uniqueProject());
    // Created 100 s ago with 600 s to live: a request for 6 hours gets the 500 s that are left.
    const at = Date.now();
    const created = await createSession(key, { timeout: 600 }, createSessionHandler(depsAt(at - 100_000)));
    const expiresAtSeconds = Date.parse(created.expiresAt) / 1000;

    const long = JSON.parse((await debug(key, created.id, { expiresIn: "21600", deps: depsAt(at) })).body);
    const longClaims = await verify(tokenOf(long.debuggerUrl), created.id, "debug");
    expect(longClaims.expiresAt).to.equal(Math.floor(at / 1000) + 500);
    expect(longClaims.expiresAt).to.be.at.most(Math.ceil(expiresAtSeconds));

    // Without expiresIn, the token lives as long as the session.
    const whole = JSON.parse((await debug(key, created.id, { deps: depsAt(at) })).body);
    expect((await verify(tokenOf(whole.wsUrl), created.id, "debug")).expiresAt).to.equal(
      Math.floor(at / 1000) + 500,
    );

    // A shorter request is honoured.
    const short = JSON.parse((await debug(key, created.id, { expiresIn: "30", deps: depsAt(at) })).body);
    expect((await verify(tokenOf(short.wsUrl), created.id, "debug")).expiresAt).to.equal(
      Math.floor(at / 1000) + 30,
    );
  });

  it("lists the pages the page lister reports, each with its own debugger URLs", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const created = await createSession(key);
    const calls: [string, string][] = [];
    const pages: PageInfo[] = [
      {
        id: "page 1",
        url: "https://example.com/",
        title: "Example",
        faviconUrl: "https://example.com/f.ico",
      },
      { id: "p2", url: "about:blank", title: "" },
    ];
    const deps = depsAt(Date.now(), {
      pages: async (projectId, sessionId) => {
        calls.push([projectId, sessionId]);
        return pages;
      },
    });

    const res = await debug(key, created.id, { deps });
    expect(res.statusCode, res.body).to.equal(200);
    const body = JSON.parse(res.body);
    expect(calls).to.deep.equal([[project, created.id]]);
    expect(body.pages).to.have.length(2);
    expect(body.pages[0]).to.deep.equal({
      ...pages[0],
      debuggerUrl: `${body.debuggerUrl}&pageId=page%201`,
      debuggerFullscreenUrl: `${body.debuggerUrl}&pageId=page%201&fullscreen=true`,
    });
    expect(body.pages[1]).to.include({ id: "p2", url: "about:blank", title: "" });
    expect(body.pages[1].debuggerUrl).to.equal(`${body.debuggerUrl}&pageId=p2`);
  });

  it("answers 400 for a session that has ended, whether released, timed out or failed", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const released = await createSession(key);
    await world.runtime.store.release(project, released.id, Date.now());
    const failed = await createSession(key);
    await world.runtime.store.fail(project, failed.id, "crashed", Date.now());
    const short = await createSession(key, { timeout: 60 });

    const cases: [string, string, SessionDeps | undefined][] = [
      [released.id, "COMPLETED", undefined],
      [failed.id, "ERROR", undefined],
      [short.id, "TIMED_OUT", depsAt(Date.now() + 10 * 60_000)],
    ];
    for (const [id, status, deps] of cases) {
      const res = await debug(key, id, { deps });
      expect(res.statusCode, `${status}: ${res.body}`).to.equal(400);
      const body = JSON.parse(res.body);
      expect(body).to.include({ statusCode: 400, error: "Bad Request" });
      expect(body.message).to.include("ended").and.include(status);
      expect(res.body).to.not.include("signingKey");
    }
  });

  it("answers 400 naming expiresIn when it is not a whole number of seconds from 1 to 21600", async () => {
    const key = world.addKey(uniqueProject());
    const created = await createSession(key);
    for (const expiresIn of ["0", "-5", "abc", "1.5", "1e3", "21601", " 60", "0x10"]) {
      const res = await debug(key, created.id, { expiresIn });
      expect(res.statusCode, `${expiresIn}: ${res.body}`).to.equal(400);
      expect(JSON.parse(res.body).message).to.include("expiresIn");
    }
    for (const expiresIn of ["1", "21600"]) {
      expect((await debug(key, created.id, { expiresIn })).statusCode, expiresIn).to.equal(200);
    }
  });

  it("answers another project's key with a 404 and asks the page lister nothing", async () => {
    const ownerKey = world.addKey(uniqueProject("owner"));
    const otherKey = world.addKey(uniqueProject("other"));
    const created = await createSession(ownerKey);
    let listed = 0;
    const deps = depsAt(Date.now(), {
      pages: async () => {
        listed++;
        return [];
      },
    });
    const res = await debug(otherKey, created.id, { deps });
    expect(res.statusCode).to.equal(404);
    const body = JSON.parse(res.body);
    expect(body).to.include({ statusCode: 404, error: "Not Found" });
    expect(res.body).to.not.include("signingKey");
    expect(listed).to.equal(0);
    expect((await debug(ownerKey, created.id, { deps })).statusCode).to.equal(200);
  });

  it("answers 404 for an unknown id and for an id that is not a UUID", async () => {
    const key = world.addKey(uniqueProject());
    expect((await debug(key, "2f1b7c1e-0000-4000-8000-000000000000")).statusCode).to.equal(404);
    expect((await debug(key, "nope")).statusCode).to.equal(404);
  });
});
