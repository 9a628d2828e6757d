import { expect } from "chai";
import { createSessionHandler } from "../../handlers/create-session";
import { getProjectHandler } from "../../handlers/projects";
import { sweepHandler } from "../../handlers/sweep";
import { SessionStore, usageMonth } from "../../lib/store";
import { apiEvent, createTestWorld, ctx, uniqueProject, type TestWorld } from "../support/fixtures";

describe("the timeout sweep", () => {
  let world: TestWorld;
  before(async () => {
    world = await createTestWorld();
  });
  after(() => world.close());

  const createAt = async (key: string, at: number, body: Record<string, unknown>) => {
    const handler = createSessionHandler({ ...world.runtime, now: () => at });
    const res = await handler(
      apiEvent({ method: "POST", path: "/v1/sessions", body, headers: { "X-BB-API-Key": key } }),
      ctx(),
    );
    expect(res.statusCode, res.body).to.equal(201);
    return JSON.parse(res.body) as { id: string; expiresAt: string };
  };

  it("ends and counts a timed-out session of every project, though nobody reads it", async () => {
    const quiet = uniqueProject("sweep");
    const busy = uniqueProject("sweep");
    const quietKey = world.addKey(quiet);
    const busyKey = world.addKey(busy, { concurrency: 10 });
    const past = Date.now() - 10 * 60_000;
    // The live one first: a create ends the project's expired sessions itself.
    const live = await createAt(busyKey, Date.now(), { timeout: 600 });
    const expired = await createAt(quietKey, past, { timeout: 90 });
    const alsoExpired = await createAt(busyKey, past, { timeout: 60 });

    const result = await sweepHandler(world.runtime)();
    expect(result.failed).to.equal(0);
    expect(result.timedOut).to.be.at.least(2);

    const store: SessionStore = world.runtime.store;
    const got = (await store.get(quiet, expired.id))!;
    expect(got.status, "written, not only derived on read").to.equal("TIMED_OUT");
    expect(got.endedAt).to.equal(Date.parse(expired.expiresAt));
    expect((await store.get(busy, alsoExpired.id))!.status).to.equal("TIMED_OUT");
    expect((await store.get(busy, live.id))!.status).to.equal("RUNNING");
    expect((await store.usage(quiet, usageMonth(Date.parse(expired.expiresAt)))).browserMinutes).to.equal(2);
    expect(await store.activeCount(busy, Date.now())).to.equal(1);

    // A second run finds nothing more to do.
    const again = await sweepHandler(world.runtime)();
    expect(await store.usage(quiet, usageMonth(Date.parse(expired.expiresAt)))).to.deep.include({
      sessions: 1,
    });
    expect(again.failed).to.equal(0);
  });

  it("uses the project's default timeout for a create that names none", async () => {
    const project = uniqueProject("sweep");
    const key = world.addKey(project);
    const { upsertProject } = await import("../../local/secrets-file");
    upsertProject(world.secretsFile, project, { defaultTimeout: 120 });
    const at = Date.now();
    const made = await createAt(key, at, {});
    expect(Date.parse(made.expiresAt) - at).to.be.within(120_000, 121_000);
    const res = await getProjectHandler(world.runtime)(
      apiEvent({
        method: "GET",
        path: `/v1/projects/${project}`,
        pathParameters: { id: project },
        headers: { "X-BB-API-Key": key },
      }),
      ctx(),
    );
    expect(JSON.parse(res.body)).to.include({ id: project, defaultTimeout: 120, concurrency: 25 });
  });
});
