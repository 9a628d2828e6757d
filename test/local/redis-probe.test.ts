import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import { probeRedis } from "../../local/redis-probe";
import { startRedisServer } from "../../local/redis-server";
import { closedPort } from "../compat/support";
import { sharedRedis } from "../support/redis";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

async function messageOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("the probe accepted it");
}

describe("a REDIS_URL that is wrong, said in words that name it and the fix", function () {
  this.timeout(20_000);

  it("accepts a real Redis", async () => {
    const { url } = await sharedRedis();
    expect(await probeRedis(url)).to.equal(url);
  });

  it("nothing listening: names REDIS_URL and says to start Redis or unset it", async () => {
    const port = await closedPort();
    const message = await messageOf(probeRedis(`redis://127.0.0.1:${port}`));
    expect(message).to.equal(
      `REDIS_URL=redis://127.0.0.1:${port}: nothing is listening there (connection refused). ` +
        "Start Redis there, or unset REDIS_URL and npm start runs its own redis-server.",
    );
  });

  it("a server that is not Redis: says it does not speak the Redis protocol", async () => {
    const server = createServer((_req, res) => res.end("<html>hello</html>"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    try {
      const port = (server.address() as AddressInfo).port;
      const message = await messageOf(probeRedis(`redis://127.0.0.1:${port}`));
      expect(message).to.match(
        /^REDIS_URL=redis:\/\/127\.0\.0\.1:\d+: the server there does not speak the Redis protocol/,
      );
      expect(message).to.not.match(/RESP type|Please report this|maxRetriesPerRequest/);
    } finally {
      server.close();
    }
  });

  it("an http:// URL: names REDIS_URL, not REDIS_ENDPOINT", async () => {
    const message = await messageOf(probeRedis("http://127.0.0.1:6379"));
    expect(message).to.match(/^environment variable REDIS_URL must use redis:\/\/ or rediss:\/\//);
  });

  it("masks a password in every message", async () => {
    const port = await closedPort();
    const message = await messageOf(probeRedis(`redis://user:hunter2@127.0.0.1:${port}`));
    expect(message).to.not.include("hunter2");
    expect(message).to.include("***");
  });

  it("says so on the console when the local redis-server dies", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wc-redis-dies-"));
    const exits: string[] = [];
    const server = await startRedisServer({ dir, onUnexpectedExit: (how) => exits.push(how) });
    try {
      const exited = new Promise((resolve) => server.process.once("exit", resolve));
      server.process.kill("SIGKILL");
      await exited;
      expect(exits).to.deep.equal(["SIGKILL"]);
      // A stop that was asked for is not reported.
      await server.restart();
      await server.stop();
      expect(exits).to.deep.equal(["SIGKILL"]);
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
