import { expect } from "chai";
import { createSessionHandler } from "../../handlers/create-session";
import { keys } from "../../lib/store";
import { apiEvent, createTestWorld, ctx, uniqueProject, type TestWorld } from "../support/fixtures";

/**
 * What one session can cost in Redis at the per-session cap, and so what one project can cost at
 * the per-project cap: the figures the README's fault matrix quotes.
 */
describe("memory: what one session and one project can hold in Redis", () => {
  let world: TestWorld;
  before(async () => {
    world = await createTestWorld();
  });
  after(() => world.close());

  it("a session at the record cap stays under 20 KiB of Redis memory, so a project at its retention cap is bounded", async () => {
    const project = uniqueProject("mem");
    const key = world.addKey(project);
    const create = createSessionHandler(world.runtime);
    // As large as the caps allow: 8 KiB of userMetadata plus settings up to the record cap.
    const body = {
      userMetadata: { notes: "m".repeat(8100) },
      browserSettings: {
        allowedDomains: Array.from({ length: 22 }, (_, i) => `${"d".repeat(240)}${i}.example`),
        fingerprint: { blob: "f".repeat(1900) },
        captchaImageSelector: "s".repeat(400),
      },
    };
    const res = await create(
      apiEvent({ method: "POST", path: "/v1/sessions", body, headers: { "x-bb-api-key": key } }),
      ctx(),
    );
    expect(res.statusCode, res.body).to.equal(201);
    const id = JSON.parse(res.body).id as string;
    const redis = await world.runtime.redis();
    const stored = (await redis.hvals(keys.session(project, id))).reduce(
      (sum, v) => sum + Buffer.byteLength(v),
      0,
    );
    expect(stored, "stored bytes near the cap").to.be.within(
      world.config.maxRecordBytes - 2048,
      world.config.maxRecordBytes,
    );
    const recordMemory = Number(
      await redis.call("MEMORY", "USAGE", keys.session(project, id), "SAMPLES", "0"),
    );
    // Two sorted-set entries (active, sessions): about 100 bytes each with the id.
    const perSession = recordMemory + 200;
    expect(perSession).to.be.below(20 * 1024);
    const worstProject = perSession * world.config.maxRetainedSessions;
    console.log(
      `      one session at the ${world.config.maxRecordBytes}-byte record cap: ${recordMemory} B in Redis ` +
        `(+~200 B of index entries); one project at ${world.config.maxRetainedSessions} retained sessions: ` +
        `at most ${(worstProject / 1024 / 1024).toFixed(1)} MiB`,
    );
  });
});
