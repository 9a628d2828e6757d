import { expect } from "chai";
import { listSessionsHandler } from "../../handlers/list-sessions";
import { createRedisClient } from "../../lib/redis";
import { createTestWorld, ctx, apiEvent, uniqueProject, type TestWorld } from "../support/fixtures";
import { startOwnRedis } from "../support/redis";
import { createBody, typicalRecord } from "./list-cost-fixtures";

/** Bytes Redis has sent to all its clients so far (INFO stats). */
async function netOutput(url: string): Promise<number> {
  const admin = createRedisClient({ url, cluster: false, connectTimeoutMs: 1000, commandTimeoutMs: 5000 });
  try {
    const info = await admin.info("stats");
    return Number(/total_net_output_bytes:(\d+)/.exec(info)![1]);
  } finally {
    admin.disconnect();
  }
}

describe("list amplification: what one list call costs Redis", function () {
  this.timeout(60_000);
  let world: TestWorld;
  let url: string;
  const project = uniqueProject("listcost");
  let key: string;

  before(async () => {
    const server = await startOwnRedis();
    url = server.url;
    // Bytes are measured here, not time: a patient command timeout keeps the set-up (100 creates
    // of 8 KB at once) from timing out on a busy machine.
    world = await createTestWorld({ redisUrl: url, env: { REDIS_COMMAND_TIMEOUT_MS: "5000" } });
    key = world.addKey(project, { concurrency: 100_000 });
    // 1000 sessions with 8 KB of userMetadata each: the most one list call looks through.
    const now = Date.now();
    for (let i = 0; i < 1000; i += 100) {
      await Promise.all(
        Array.from({ length: 100 }, (_, j) =>
          world.runtime.store.create(createBody(typicalRecord(project, now + i + j, i + j), now + i + j)),
        ),
      );
    }
  });
  after(() => world.close());

  const list = (query: Record<string, string>) =>
    listSessionsHandler(world.runtime)(
      apiEvent({ method: "GET", path: "/v1/sessions", query, headers: { "x-bb-api-key": key } }),
      ctx(),
    );

  it("sends at most 600 KB for a q that matches nothing among 1000 sessions with 8 KB of metadata each", async () => {
    await list({}); // warm up the connection
    const before = await netOutput(url);
    const res = await list({ q: "user_metadata['order']:'no-such-order'" });
    const sent = (await netOutput(url)) - before;
    expect(res.statusCode).to.equal(200);
    expect(JSON.parse(res.body)).to.deep.equal([]);
    console.log(`      q matching none of 1000 sessions (8 KB metadata each): Redis sent ${sent} bytes`);
    expect(sent).to.be.below(600 * 1024);
  });

  it("still finds the matching session, and a status filter reads no metadata", async () => {
    const res = await list({ q: "user_metadata['order']:'order-417'" });
    const found = JSON.parse(res.body) as { userMetadata: { order: string } }[];
    expect(found.map((s) => s.userMetadata.order)).to.deep.equal(["order-417"]);
    const before = await netOutput(url);
    const none = await list({ status: "ERROR" });
    const sent = (await netOutput(url)) - before;
    expect(JSON.parse(none.body)).to.deep.equal([]);
    console.log(`      status=ERROR matching none of 1000 sessions: Redis sent ${sent} bytes`);
    expect(sent).to.be.below(200 * 1024);
  });
});
