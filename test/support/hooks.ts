import { stopAllRedis } from "./redis";

// Test runs must not print the AWS SDK's Node-version notice or pick up a developer's AWS profile.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
process.env.AWS_ACCESS_KEY_ID ??= "test-access-key";
process.env.AWS_SECRET_ACCESS_KEY ??= "test-secret-key";
process.env.AWS_REGION ??= "us-west-2";
// No EMF lines in the test output (as no log lines): the tests that read metrics pass their own writer.
process.env.POWERTOOLS_METRICS_DISABLED ??= "true";

/** Mocha root hooks: whatever servers the run started are stopped at its end. */
export const mochaHooks = {
  beforeAll(): void {
    // Stagehand 4 needs a global WebSocket (Node 22.18+); `npm test` runs the Node 22 that npm
    // installs from the registry. Say which Node ran, so a CI log shows it.
    const [major, minor] = process.versions.node.split(".").map(Number);
    if (major < 22 || (major === 22 && minor < 18)) {
      throw new Error(
        `the test suite needs Node.js 22.18 or newer, found ${process.version}: run it with npm test`,
      );
    }
    console.log(`  (tests on Node ${process.version})`);
  },
  async afterAll(): Promise<void> {
    await stopAllRedis();
  },
};
