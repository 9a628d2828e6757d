import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { apiKeyEntrySchema, projectEntrySchema, type ProjectEntry } from "../lib/apikeys";
import { parseTokenKeySet } from "../lib/tokens";

/** One API-key entry as `npm run keys -- create --print-entry` prints it: a hash, never a key. */
export interface ApiKeyEntryConfig {
  hash: string;
  projectId: string;
  /**
   * Legacy: a limit written on the key, from before projects. Counts only for a project without
   * entry in `projects` (its limit is then the smallest on its keys); refused for one with an entry.
   */
  concurrency?: number;
  name?: string;
  createdAt?: string;
}

/** One project of the stack's `projects` config: the handlers' own project entry (lib/apikeys.ts). */
export type ProjectEntryConfig = ProjectEntry;

/** The fields a project entry may have (any other is a typo the schema would silently drop). */
const projectFields = (): string[] => Object.keys(projectEntrySchema().shape);

export interface SecretsArgs {
  /** Entries of the API-key secret (hashes only). An empty list is allowed: no key works yet. */
  apiKeys: readonly ApiKeyEntryConfig[];
  /** The projects' entries (limits shared by each project's keys); default none. */
  projects?: readonly ProjectEntryConfig[];
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

/** Checks the project entries the way the handlers will; throws naming the entry and field. */
export function projectEntries(projects: readonly ProjectEntryConfig[]): ProjectEntryConfig[] {
  if (!Array.isArray(projects)) throw new Error("secrets: projects must be a list of project entries");
  const seen = new Set<string>();
  return projects.map((project, index) => {
    const where = `secrets: projects[${index}]`;
    if (typeof project !== "object" || project === null || Array.isArray(project)) {
      throw new Error(`${where} must be an object`);
    }
    const unknown = Object.keys(project).find((field) => !projectFields().includes(field));
    if (unknown !== undefined) {
      throw new Error(
        `${where}.${unknown} is not a project field (the fields: ${projectFields().join(", ")})`,
      );
    }
    // The handlers' own project schema (lib/apikeys.ts), so config and secret can never disagree.
    const checked = projectEntrySchema().safeParse(project);
    if (!checked.success) {
      const issue = checked.error.issues[0];
      throw new Error(`${where}.${issue?.path.join(".") || "(entry)"}: ${issue?.message ?? "is invalid"}`);
    }
    if (seen.has(project.id)) {
      throw new Error(`${where}.id: project ${project.id} appears twice (one entry per project)`);
    }
    seen.add(project.id);
    // Only the schema's fields, none of them undefined (so the secret's JSON is stable).
    return checked.data;
  });
}

/**
 * The API-key secret's value, `{"keys": [...], "projects": [...]}`, after checking each entry the
 * way the handlers will (so a bad entry fails `pulumi preview`, not every request). Throws naming
 * the entry. A key may carry a legacy `concurrency` only while its project has no entry: with
 * one, the project's limit applies, and a limit on the key would be silently ignored.
 */
export function apiKeySetValue(
  entries: readonly ApiKeyEntryConfig[],
  projects: readonly ProjectEntryConfig[] = [],
): string {
  if (!Array.isArray(entries)) throw new Error("secrets: apiKeys must be a list of key entries");
  const projectList = projectEntries(projects);
  const seen = new Set<string>();
  const keys = entries.map((entry, index) => {
    const where = `secrets: apiKeys[${index}]`;
    if (typeof entry !== "object" || entry === null) throw new Error(`${where} must be an object`);
    if ((entry as { key?: unknown }).key !== undefined) {
      throw new Error(`${where} holds a key: put only the entry (its hash) in config, never the key`);
    }
    // The handlers' own entry schema (lib/apikeys.ts), so config and secret can never disagree.
    const checked = apiKeyEntrySchema().safeParse(entry);
    if (!checked.success) {
      const issue = checked.error.issues[0];
      const field = issue?.path.join(".") || "(entry)";
      const hint = field === "hash" ? " (make it with npm run keys -- create --print-entry)" : "";
      throw new Error(`${where}.${field}: ${issue?.message ?? "is invalid"}${hint}`);
    }
    if (seen.has(entry.hash)) throw new Error(`${where}.hash appears twice`);
    seen.add(entry.hash);
    const projectIndex = projectList.findIndex((project) => project.id === entry.projectId);
    if (entry.concurrency !== undefined && projectIndex !== -1) {
      throw new Error(
        `${where}.concurrency: project ${entry.projectId} has an entry (projects[${projectIndex}]), whose limit ` +
          `all its keys share; move the limit to projects[${projectIndex}].concurrency and remove it from the key`,
      );
    }
    const out: ApiKeyEntryConfig = { hash: entry.hash, projectId: entry.projectId };
    if (entry.concurrency !== undefined) out.concurrency = entry.concurrency;
    if (entry.name !== undefined) out.name = entry.name;
    if (entry.createdAt !== undefined) out.createdAt = String(entry.createdAt);
    return out;
  });
  // Without projects the value stays as it was before projects existed: no new secret version.
  return JSON.stringify(projectList.length > 0 ? { keys, projects: projectList } : { keys });
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
  try {
    JSON.parse(raw);
  } catch {
    throw new Error("secrets: tokenKeySet is not valid JSON");
  }
  try {
    // The handlers' own parser (lib/tokens.ts); its messages name key ids, never key material.
    parseTokenKeySet(raw);
  } catch (error) {
    throw new Error(`secrets: tokenKeySet: ${(error as Error).message}`, { cause: error });
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
    const apiKeysValue = apiKeySetValue(args.apiKeys, args.projects ?? []);
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
