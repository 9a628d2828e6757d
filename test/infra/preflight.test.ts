import * as pulumi from "@pulumi/pulumi";
import { expect } from "chai";
import { recorded, settle } from "./mocks";
import { DEV_CONFIG, loadProgram } from "./program";

describe("the program's preflight (under mocks)", function () {
  this.timeout(240_000); // the program itself is loaded first (see program.ts)

  before(async () => {
    await loadProgram();
  });

  for (const [what, key, value, message] of [
    [
      "a malformed handler setting",
      "handlerSettings",
      JSON.stringify({ DEFAULT_CONCURRENCY: "many" }),
      /DEFAULT_CONCURRENCY/,
    ],
    [
      "an unknown handler setting",
      "handlerSettings",
      JSON.stringify({ REDIS_ENDPOINT: "redis://x:1" }),
      /REDIS_ENDPOINT/,
    ],
    ["an unknown log level", "logLevel", "LOUD", /logLevel must be one of/],
  ] as const) {
    it(`refuses ${what} before it registers any resource`, async () => {
      await settle();
      const before = recorded.length;
      const saved = pulumi.runtime.allConfig();
      const path = require.resolve("../../index");
      const loaded = require.cache[path];
      delete require.cache[path];
      pulumi.runtime.setAllConfig({ ...DEV_CONFIG, [`wallcrawler-api:${key}`]: value });
      try {
        let failure: unknown;
        await import("../../index").catch((error: unknown) => {
          failure = error;
        });
        expect(String(failure)).to.match(message);
      } finally {
        require.cache[path] = loaded;
        pulumi.runtime.setAllConfig(saved);
      }
      await settle();
      expect(recorded.length, "nothing registered: not the network, not the cache").to.equal(before);
    });
  }
});
