/**
 * Waiting for a slot through the local stack: the official SDK with `defaultHeaders` (as the
 * README shows), and a client that goes away mid-wait, which the local stack notices.
 */
import { request } from "node:http";
import Browserbase from "@browserbasehq/sdk";
import { expect } from "chai";
import { Redis } from "ioredis";
import { keys } from "../../lib/store";
import { sharedRedis } from "../support/redis";
import { startCompatStack, type CompatStack } from "./support";

describe("compat: waiting for a slot (Prefer: wait) through the local stack", function () {
  this.timeout(60_000);
  let world: CompatStack;
  let redis: Redis;

  before(async () => {
    world = await startCompatStack({ projects: [{ concurrency: 1 }, { concurrency: 1 }] });
    redis = new Redis((await sharedRedis()).url);
  });
  after(async () => {
    redis.disconnect();
    await world.stop();
  });

  /** Resolves once the queue of `projectId` holds `n` waiters, as Redis records them. */
  async function queueHolds(projectId: string, n: number): Promise<void> {
    while ((await redis.zcard(keys.queue(projectId))) !== n) await new Promise((r) => setImmediate(r));
  }

  it("lets the official SDK wait with defaultHeaders: the second create is answered when the first session is released", async () => {
    const [project] = world.projects;
    const bb = new Browserbase({
      apiKey: project.apiKey,
      baseURL: world.url,
      defaultHeaders: { Prefer: "wait=20" },
    });
    const first = await bb.sessions.create();
    const second = bb.sessions.create();
    await queueHolds(project.projectId, 1);
    await bb.sessions.update(first.id, { status: "REQUEST_RELEASE" });
    const got = await second;
    expect(got.status).to.equal("RUNNING");
    expect(got.id).to.not.equal(first.id);
    await bb.sessions.update(got.id, { status: "REQUEST_RELEASE" });
  });

  it("takes a waiter whose client went away out of the queue, so the freed slot makes no session for nobody", async () => {
    const [, project] = world.projects;
    const bb = new Browserbase({ apiKey: project.apiKey, baseURL: world.url });
    const first = await bb.sessions.create();
    const url = new URL("/v1/sessions", world.url);
    const waiting = request(url, {
      method: "POST",
      headers: { "x-bb-api-key": project.apiKey, prefer: "wait=20", "content-type": "application/json" },
    });
    waiting.on("error", () => undefined);
    waiting.end("{}");
    await queueHolds(project.projectId, 1);
    waiting.destroy();
    // The stack sees the socket close, aborts the wait and the waiter leaves the queue.
    await queueHolds(project.projectId, 0);
    await bb.sessions.update(first.id, { status: "REQUEST_RELEASE" });
    expect(await redis.zcount(keys.active(project.projectId), `(${Date.now()}`, "+inf")).to.equal(0);
    const listed = await bb.sessions.list({ status: "RUNNING" });
    expect(listed).to.have.length(0);
  });
});
