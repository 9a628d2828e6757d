import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";

/** One API-key entry as `npm run keys -- create --print-entry` prints it: a hash, never a key. */
export interface ApiKeyEntryConfig {
  hash: string;
  projectId: string;
  concurrency?: number;
  name?: string;
  createdAt?: string;
}

export interface SecretsArgs {
  /** Entries of the API-key secret (hashes only). An empty list is allowed: no key works yet. */
  apiKeys: readonly ApiKeyEntryConfig[];
  /**
   * Ids of the generated token keys (32 random bytes each); default `["k1"]`. Adding an id adds
   * a key; removing one drops it. Ignored when `tokenKeySet` is given.
   */
  tokenKeyIds?: readonly string[];
  /** The id new tokens are made with; default the last of `tokenKeyIds`. */
  currentTokenKeyId?: string;
  /** A whole key set `{current, keys}` as JSON, from stack config marked secret, instead of generated keys. */
  tokenKeySet?: pulumi.Input<string>;
  /** Recovery window of both secrets in days (0 deletes at once); default 7. */
  recoveryWindowDays?: number;
}

const KID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const HASH_PATTERN = /^sha256:[0-9a-f]{64}$/;
const PROJECT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/**
 * The API-key secret's value, `{"keys": [...]}`, after checking each entry the way the handlers
 * will (so a bad entry fails `pulumi preview`, not every request). Throws naming the entry.
 */
export function apiKeySetValue(entries: readonly ApiKeyEntryConfig[]): string {
  if (!Array.isArray(entries)) throw new Error("secrets: apiKeys must be a list of key entries");
  const seen = new Set<string>();
  const keys = entries.map((entry, index) => {
    const where = `secrets: apiKeys[${index}]`;
    if (typeof entry !== "object" || entry === null) throw new Error(`${where} must be an object`);
    if (typeof entry.hash !== "string" || !HASH_PATTERN.test(entry.hash)) {
      throw new Error(
        `${where}.hash must be sha256:<64 hex digits> (make it with npm run keys -- create --print-entry)`,
      );
    }
    if ((entry as { key?: unknown }).key !== undefined) {
      throw new Error(`${where} holds a key: put only the entry (its hash) in config, never the key`);
    }
    if (typeof entry.projectId !== "string" || !PROJECT_ID_PATTERN.test(entry.projectId)) {
      throw new Error(`${where}.projectId must be 1-64 letters, digits, _ or -`);
    }
    if (
      entry.concurrency !== undefined &&
      (!Number.isInteger(entry.concurrency) || entry.concurrency < 1 || entry.concurrency > 100000)
    ) {
      throw new Error(`${where}.concurrency must be a whole number from 1 to 100000`);
    }
    if (entry.name !== undefined && (typeof entry.name !== "string" || entry.name.length > 200)) {
      throw new Error(`${where}.name must be a string of at most 200 characters`);
    }
    if (seen.has(entry.hash)) throw new Error(`${where}.hash appears twice`);
    seen.add(entry.hash);
    const out: ApiKeyEntryConfig = { hash: entry.hash, projectId: entry.projectId };
    if (entry.concurrency !== undefined) out.concurrency = entry.concurrency;
    if (entry.name !== undefined) out.name = entry.name;
    if (entry.createdAt !== undefined) out.createdAt = String(entry.createdAt);
    return out;
  });
  return JSON.stringify({ keys });
}

/** Checks the generated key ids and picks the current one; throws naming the argument. */
export function tokenKeyPlan(
  ids: readonly string[] = ["k1"],
  current?: string,
): { ids: string[]; current: string } {
  if (!Array.isArray(ids) || ids.length === 0)
    throw new Error("secrets: tokenKeyIds must list at least one key id");
  for (const id of ids) {
    if (typeof id !== "string" || !KID_PATTERN.test(id)) {
      throw new Error(`secrets: tokenKeyIds entry "${String(id)}" must be 1-64 letters, digits, _ or -`);
    }
  }
  if (new Set(ids).size !== ids.length) throw new Error("secrets: tokenKeyIds has a duplicate id");
  const chosen = current ?? ids[ids.length - 1];
  if (!ids.includes(chosen)) {
    throw new Error(`secrets: currentTokenKeyId "${chosen}" is not one of tokenKeyIds (${ids.join(", ")})`);
  }
  return { ids: [...ids], current: chosen };
}

/** The token key-set value `{current, keys: {kid: base64url}}` from standard-base64 random bytes. */
export function tokenKeySetValue(current: string, base64Keys: Record<string, string>): string {
  const keys: Record<string, string> = {};
  for (const [kid, value] of Object.entries(base64Keys)) {
    keys[kid] = Buffer.from(value, "base64").toString("base64url");
  }
  return checkTokenKeySet(JSON.stringify({ current, keys }));
}

/** Checks a key set given whole (from config); returns it unchanged. Errors never echo key material. */
export function checkTokenKeySet(raw: string): string {
  let parsed: { current?: unknown; keys?: unknown };
  try {
    parsed = JSON.parse(raw) as typeof parsed;
  } catch {
    throw new Error("secrets: tokenKeySet is not valid JSON");
  }
  if (typeof parsed.current !== "string" || !KID_PATTERN.test(parsed.current)) {
    throw new Error("secrets: tokenKeySet.current must be a key id (1-64 letters, digits, _ or -)");
  }
  if (typeof parsed.keys !== "object" || parsed.keys === null || Array.isArray(parsed.keys)) {
    throw new Error("secrets: tokenKeySet.keys must be an object of key id to base64url key");
  }
  for (const [kid, key] of Object.entries(parsed.keys as Record<string, unknown>)) {
    if (!KID_PATTERN.test(kid)) throw new Error(`secrets: tokenKeySet key id "${kid}" is malformed`);
    if (
      typeof key !== "string" ||
      !/^[A-Za-z0-9_-]+$/.test(key) ||
      Buffer.from(key, "base64url").length !== 32
    ) {
      throw new Error(`secrets: tokenKeySet key ${kid} must be 32 bytes of base64url`);
    }
  }
  if (!(parsed.current in (parsed.keys as object))) {
    throw new Error(`secrets: tokenKeySet.current names ${parsed.current}, which is not in keys`);
  }
  return raw;
}

/**
 * The two secrets the handlers read: the API-key hash set and the token key set. Functions get
 * only their ARNs.
 */
export class Secrets extends pulumi.ComponentResource {
  public readonly apiKeysSecretArn: pulumi.Output<string>;
  public readonly tokenKeysSecretArn: pulumi.Output<string>;
  /** The id tokens are currently made with (not secret). */
  public readonly currentTokenKeyId: pulumi.Output<string>;

  constructor(name: string, args: SecretsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("wallcrawler:infra:Secrets", name, {}, opts);
    if (!args.apiKeys) throw new Error("secrets: apiKeys is required (an empty list is allowed)");
    const apiKeysValue = apiKeySetValue(args.apiKeys);
    const recoveryWindowInDays = args.recoveryWindowDays ?? 7;

    let tokenValue: pulumi.Output<string>;
    if (args.tokenKeySet !== undefined) {
      tokenValue = pulumi.secret(pulumi.output(args.tokenKeySet).apply(checkTokenKeySet));
      this.currentTokenKeyId = pulumi.unsecret(
        tokenValue.apply((raw) => (JSON.parse(raw) as { current: string }).current),
      );
    } else {
      const plan = tokenKeyPlan(args.tokenKeyIds, args.currentTokenKeyId);
      const generated: Record<string, pulumi.Output<string>> = {};
      for (const kid of plan.ids) {
        generated[kid] = new random.RandomBytes(
          `${name}-token-key-${kid}`,
          { length: 32 },
          { parent: this },
        ).base64;
      }
      tokenValue = pulumi.secret(pulumi.all(generated).apply((keys) => tokenKeySetValue(plan.current, keys)));
      this.currentTokenKeyId = pulumi.output(plan.current);
    }

    /** A secret and its one version, both named `${name}-${suffix}`. */
    const storedSecret = (suffix: string, description: string, value: pulumi.Input<string>) => {
      const secret = new aws.secretsmanager.Secret(
        `${name}-${suffix}`,
        { description, recoveryWindowInDays },
        { parent: this },
      );
      new aws.secretsmanager.SecretVersion(
        `${name}-${suffix}`,
        { secretId: secret.id, secretString: value },
        { parent: this },
      );
      return secret;
    };
    const apiKeys = storedSecret(
      "api-keys",
      "WallCrawler API: API-key hashes and their projects",
      apiKeysValue,
    );
    const tokenKeys = storedSecret(
      "token-keys",
      "WallCrawler API: session-token key set (shared with the Proxy)",
      tokenValue,
    );

    this.apiKeysSecretArn = apiKeys.arn;
    this.tokenKeysSecretArn = tokenKeys.arn;
    this.registerOutputs({
      apiKeysSecretArn: this.apiKeysSecretArn,
      tokenKeysSecretArn: this.tokenKeysSecretArn,
      currentTokenKeyId: this.currentTokenKeyId,
    });
  }
}
