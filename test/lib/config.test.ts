import { expect } from "chai";
import { ConfigError, loadConfig, normaliseRedisUrl } from "../../lib/config";

const BASE = {
  REDIS_ENDPOINT: "cache.example.internal:6379",
  JWE_SECRET_ARN: "arn:aws:secretsmanager:us-west-2:123456789012:secret:tokens-AbCdEf",
  API_KEYS_SECRET_ARN: "arn:aws:secretsmanager:us-west-2:123456789012:secret:keys-AbCdEf",
  ALB_DNS_NAME: "connect-123.us-west-2.elb.amazonaws.com",
};

function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return error as ConfigError;
  }
  expect.fail("loadConfig accepted the environment");
}

describe("loadConfig", () => {
  it("reads the required variables and fills in documented defaults", () => {
    const config = loadConfig({ ...BASE });
    expect(config).to.deep.include({
      redis: {
        url: "redis://cache.example.internal:6379",
        cluster: false,
        connectTimeoutMs: 500,
        commandTimeoutMs: 500,
      },
      redisAuthSecretRef: undefined,
      tokenKeysSecretRef: BASE.JWE_SECRET_ARN,
      apiKeysSecretRef: BASE.API_KEYS_SECRET_ARN,
      connectHost: BASE.ALB_DNS_NAME,
      connectScheme: "wss",
      region: "local",
      defaultTimeoutSeconds: 300,
      defaultConcurrency: 25,
      retentionSeconds: 7 * 86400,
      secretsTtlMs: 300_000,
      secretsMaxStaleMs: 3_600_000,
      tokenIssuer: "wallcrawler-api",
      tokenAudience: "wallcrawler-proxy",
      maxUserMetadataBytes: 8192,
      maxBodyBytes: 65536,
      idempotencyTtlSeconds: 86400,
    });
  });

  it("reads the environment it is given, not the process's", () => {
    const saved = process.env.DEFAULT_CONCURRENCY;
    process.env.DEFAULT_CONCURRENCY = "3";
    try {
      expect(loadConfig({ ...BASE }).defaultConcurrency).to.equal(25);
    } finally {
      if (saved === undefined) delete process.env.DEFAULT_CONCURRENCY;
      else process.env.DEFAULT_CONCURRENCY = saved;
    }
  });

  it("takes optional settings from their variables", () => {
    const config = loadConfig({
      ...BASE,
      REDIS_AUTH_SECRET_ARN: "arn:aws:secretsmanager:us-west-2:1:secret:auth",
      REDIS_CLUSTER: "true",
      REDIS_CONNECT_TIMEOUT_MS: "250",
      CONNECT_SCHEME: "ws",
      AWS_REGION: "eu-west-1",
      DEFAULT_SESSION_TIMEOUT_SECONDS: "600",
      DEFAULT_CONCURRENCY: "4",
      SECRETS_CACHE_TTL_SECONDS: "30",
      SECRETS_MAX_STALE_SECONDS: "0",
      TOKEN_ISSUER: "iss-x",
      TOKEN_AUDIENCE: "aud-x",
    });
    expect(config.redisAuthSecretRef).to.equal("arn:aws:secretsmanager:us-west-2:1:secret:auth");
    expect(config.redis.cluster).to.equal(true);
    expect(config.redis.connectTimeoutMs).to.equal(250);
    expect(config.connectScheme).to.equal("ws");
    expect(config.region).to.equal("eu-west-1");
    expect(config.defaultTimeoutSeconds).to.equal(600);
    expect(config.defaultConcurrency).to.equal(4);
    expect(config.secretsTtlMs).to.equal(30_000);
    expect(config.secretsMaxStaleMs).to.equal(0);
    expect(config.tokenIssuer).to.equal("iss-x");
    expect(config.tokenAudience).to.equal("aud-x");
  });

  it("prefers WALLCRAWLER_REGION over AWS_REGION", () => {
    expect(loadConfig({ ...BASE, AWS_REGION: "eu-west-1", WALLCRAWLER_REGION: "us-east-2" }).region).to.equal(
      "us-east-2",
    );
  });

  for (const name of ["REDIS_ENDPOINT", "JWE_SECRET_ARN", "API_KEYS_SECRET_ARN", "ALB_DNS_NAME"] as const) {
    it(`throws naming ${name} when it is missing or blank`, () => {
      const missing: Record<string, string | undefined> = { ...BASE };
      delete missing[name];
      expect(configError(missing).message).to.equal(`environment variable ${name} is required but not set`);
      expect(configError({ ...BASE, [name]: "   " }).message).to.include(name);
    });
  }

  it("reads OBJECT_STORE as s3://<bucket> or file:<folder>, and names it when it is neither", () => {
    expect(loadConfig({ ...BASE, OBJECT_STORE: "s3://wc-objects-1" }).objectStore).to.equal(
      "s3://wc-objects-1",
    );
    expect(loadConfig({ ...BASE }).objectStore).to.equal(undefined);
    const message = configError({ ...BASE, OBJECT_STORE: "ftp://x" }).message;
    expect(message).to.equal(
      'environment variable OBJECT_STORE must be s3://<bucket> or file:<folder>, got "ftp://x"',
    );
  });

  const badIntegers: [string, string][] = [
    ["DEFAULT_CONCURRENCY", "abc"],
    ["DEFAULT_CONCURRENCY", "1.5"],
    ["DEFAULT_CONCURRENCY", "0"],
    ["DEFAULT_SESSION_TIMEOUT_SECONDS", "59"],
    ["DEFAULT_SESSION_TIMEOUT_SECONDS", "21601"],
    ["REDIS_COMMAND_TIMEOUT_MS", "10ms"],
    ["MAX_BODY_BYTES", "-1"],
  ];
  for (const [name, value] of badIntegers) {
    it(`throws naming ${name} and its range for ${JSON.stringify(value)}`, () => {
      const message = configError({ ...BASE, [name]: value }).message;
      expect(message).to.include(name);
      expect(message).to.include(`"${value}"`);
      expect(message).to.match(/must be an integer from \d+ to \d+/);
    });
  }

  it("throws naming REDIS_CLUSTER for a value that is not a boolean", () => {
    expect(configError({ ...BASE, REDIS_CLUSTER: "maybe" }).message).to.include("REDIS_CLUSTER");
  });

  it("throws naming CONNECT_SCHEME for anything but ws or wss", () => {
    expect(configError({ ...BASE, CONNECT_SCHEME: "https" }).message).to.include("CONNECT_SCHEME");
  });

  it("throws when ALB_DNS_NAME is a URL rather than a host", () => {
    expect(configError({ ...BASE, ALB_DNS_NAME: "https://connect.example.com" }).message).to.include(
      "ALB_DNS_NAME",
    );
    expect(loadConfig({ ...BASE, ALB_DNS_NAME: "127.0.0.1:9222" }).connectHost).to.equal("127.0.0.1:9222");
  });

  describe("REDIS_ENDPOINT forms", () => {
    it("turns host:port into a redis:// URL", () => {
      expect(
        loadConfig({ ...BASE, REDIS_ENDPOINT: "master.wc.abc.usw2.cache.amazonaws.com:6379" }).redis.url,
      ).to.equal("redis://master.wc.abc.usw2.cache.amazonaws.com:6379");
      expect(normaliseRedisUrl("localhost")).to.equal("redis://localhost");
    });

    it("keeps redis:// and rediss:// URLs as given", () => {
      expect(loadConfig({ ...BASE, REDIS_ENDPOINT: "redis://127.0.0.1:6380/2" }).redis.url).to.equal(
        "redis://127.0.0.1:6380/2",
      );
      expect(
        loadConfig({ ...BASE, REDIS_ENDPOINT: "rediss://:token@cache.example:6379" }).redis.url,
      ).to.equal("rediss://:token@cache.example:6379");
    });

    it("refuses other schemes and unparseable endpoints, naming the variable", () => {
      expect(configError({ ...BASE, REDIS_ENDPOINT: "http://cache.example:6379" }).message).to.match(
        /REDIS_ENDPOINT must use redis:\/\/ or rediss:\/\//,
      );
      expect(configError({ ...BASE, REDIS_ENDPOINT: "cache example:6379" }).message).to.include(
        "REDIS_ENDPOINT",
      );
      expect(configError({ ...BASE, REDIS_ENDPOINT: "redis://:6379" }).message).to.include("REDIS_ENDPOINT");
    });
  });
});
