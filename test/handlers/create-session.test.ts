import { expect } from "chai";
import { createSessionHandler } from "../../handlers/create-session";
import type { HttpHandler } from "../../lib/http";
import { keys } from "../../lib/store";
import { verifySessionToken } from "../../lib/tokens";
import { apiEvent, createTestWorld, ctx, uniqueProject, type TestWorld } from "../support/fixtures";

describe("POST /v1/sessions", () => {
  let world: TestWorld;
  let handler: HttpHandler;

  before(async () => {
    world = await createTestWorld();
    handler = createSessionHandler(world.runtime);
  });
  after(() => world.close());

  const create = (key: string | undefined, body?: unknown, headers: Record<string, string> = {}) =>
    handler(
      apiEvent({
        method: "POST",
        path: "/v1/sessions",
        body,
        headers: key ? { "X-BB-API-Key": key, ...headers } : headers,
      }),
      ctx(),
    );

  it("creates a RUNNING session with a connect URL whose token decrypts to the session", async () => {
    const project = uniqueProject();
    const key = world.addKey(project);
    const before = Date.now();
    const res = await create(key, { timeout: 120, userMetadata: { order: "42" } });
    expect(res.statusCode, res.body).to.equal(201);
    const body = JSON.parse(res.body);
    expect(body.id).to.match(/^[0-9a-f-]{36}$/);
    expect(body.status).to.equal("RUNNING");
    expect(body.projectId).to.equal(project);
    expect(body.region).to.equal("us-west-2");
    expect(body.keepAlive).to.equal(false);
    expect(body.proxyBytes).to.equal(0);
    expect(body.userMetadata).to.deep.equal({ order: "42" });
    const expiresAt = Date.parse(body.expiresAt);
    expect(expiresAt - Date.parse(body.createdAt)).to.equal(120_000);
    expect(Date.parse(body.createdAt)).to.be.at.least(before);
    expect(body.connectUrl).to.equal(
      `wss://connect.test.example/v1/sessions/${body.id}/connect?signingKey=${body.signingKey}`,
    );
    expect(body.seleniumRemoteUrl).to.equal("https://connect.test.example/webdriver");
    const claims = await verifySessionToken(body.signingKey, world.tokenKeys, {
      issuer: "wallcrawler-api",
      audience: "wallcrawler-proxy",
      sessionId: body.id,
    });
    expect(claims.projectId).to.equal(project);
    expect(claims.expiresAt).to.equal(Math.ceil(expiresAt / 1000));
    const stored = await (await world.runtime.redis()).hgetall(keys.session(project, body.id));
    expect(stored.status).to.equal("RUNNING");
  });
});
