import { stopAllRedis } from "./redis";

// Test runs must not print the AWS SDK's Node-version notice or pick up a developer's AWS profile.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
process.env.AWS_ACCESS_KEY_ID ??= "test-access-key";
process.env.AWS_SECRET_ACCESS_KEY ??= "test-secret-key";
process.env.AWS_REGION ??= "us-west-2";

/** Mocha root hooks: whatever servers the run started are stopped at its end. */
export const mochaHooks = {
  async afterAll(): Promise<void> {
    await stopAllRedis();
  },
};
