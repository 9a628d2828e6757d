import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import {
  generateApiKey,
  parseApiKeySet,
  projectEntrySchema,
  type ApiKeyEntry,
  type ApiKeySet,
  type ProjectEntry,
} from "../lib/apikeys";
import { parseTokenKeySet, rotateTokenKeySet, type TokenKeySet } from "../lib/tokens";

/**
 * The local stack's stand-in for Secrets Manager: one JSON file holding both secret values in
 * exactly the formats the deployed secrets use.
 */
export interface LocalSecrets {
  apiKeys: ApiKeySet;
  tokenKeys: TokenKeySet;
}

export function secretsPath(home: string): string {
  return join(home, "secrets.json");
}

/** What to do about a broken secrets file (said after every message about one). */
const REMEDY =
  "Restore it from a backup, or delete it and run npm start to make a new one " +
  "(its API keys stop working: mint new ones with npm run keys -- create --project <id>).";

/** A secrets file that cannot be used: the message names the file, what is wrong and the fix. */
export class SecretsFileError extends Error {
  constructor(path: string, problem: string) {
    super(`${path}: ${problem}. ${REMEDY}`);
    this.name = "SecretsFileError";
  }
}

/** Reads and checks the whole file (both key sets, with the handlers' own parsers). */
export function readSecrets(path: string): LocalSecrets {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new SecretsFileError(path, "there is no such file (npm start creates it)");
    throw new SecretsFileError(path, `cannot be read (${code ?? (error as Error).message})`);
  }
  if (text.trim() === "") throw new SecretsFileError(path, "the file is empty");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    // JSON.parse quotes a piece of the text: say only where it broke, never what the file holds.
    const where = /position (\d+)/.exec((error as Error).message)?.[1];
    throw new SecretsFileError(
      path,
      `is not valid JSON${where ? ` (it breaks at character ${where} of ${text.length})` : ""}, perhaps cut short`,
    );
  }
  const secrets = value as Partial<LocalSecrets> | null;
  if (typeof secrets !== "object" || secrets === null || Array.isArray(secrets)) {
    throw new SecretsFileError(path, 'must be a JSON object with "apiKeys" and "tokenKeys"');
  }
  for (const field of ["apiKeys", "tokenKeys"] as const) {
    if (secrets[field] === undefined) throw new SecretsFileError(path, `"${field}" is missing`);
  }
  try {
    parseTokenKeySet(JSON.stringify(secrets.tokenKeys));
  } catch (error) {
    throw new SecretsFileError(path, `"tokenKeys" is not a valid key set: ${(error as Error).message}`);
  }
  try {
    parseApiKeySet(JSON.stringify(secrets.apiKeys));
  } catch (error) {
    throw new SecretsFileError(path, `"apiKeys" is not a valid key list: ${(error as Error).message}`);
  }
  return secrets as LocalSecrets;
}

/** Writes atomically (temp file + rename) with owner-only permissions. */
export function writeSecrets(path: string, secrets: LocalSecrets): void {
  mkdirSync(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify(secrets, null, 2) + "\n", { mode: 0o600 });
  chmodSync(temp, 0o600);
  renameSync(temp, path);
}

/**
 * Creates the secrets file on first run with a fresh token key and no API key (the first key is
 * minted only once the stack is up, by `mintFirstKey`, so a start that fails loses no key), or
 * checks the existing one, throwing a SecretsFileError that says what is wrong and how to fix it.
 */
export function ensureSecretsFile(path: string): { created: boolean } {
  if (existsSync(path)) {
    readSecrets(path);
    return { created: false };
  }
  writeSecrets(path, { apiKeys: { keys: [] }, tokenKeys: rotateTokenKeySet() });
  return { created: true };
}

/** Mints the first API key (project `local`) when the file holds none; returns it to be shown once. */
export function mintFirstKey(path: string): { apiKey: string; entry: ApiKeyEntry } | undefined {
  const secrets = readSecrets(path);
  if (secrets.apiKeys.keys.length > 0) return undefined;
  const { key, entry } = generateApiKey("local", { name: "first local key" });
  secrets.apiKeys.keys.push(entry);
  writeSecrets(path, secrets);
  return { apiKey: key, entry };
}

/** Adds an API-key entry to the local file. */
export function addApiKeyEntry(path: string, entry: ApiKeyEntry): void {
  const secrets = readSecrets(path);
  secrets.apiKeys.keys.push(entry);
  writeSecrets(path, secrets);
}

/** The fields of a project that `upsertProject` sets; absent fields keep their value. */
export type ProjectChanges = Partial<
  Pick<
    ProjectEntry,
    | "name"
    | "concurrency"
    | "defaultTimeout"
    | "ownerId"
    | "createRate"
    | "createBurst"
    | "requestRate"
    | "requestBurst"
  >
>;

/** What `setProject` did to a key set. */
export interface ProjectUpdate {
  /** The key set after the change (a copy: the given set is left as it was). */
  set: ApiKeySet;
  /** The project's entry as written. */
  project: ProjectEntry;
  created: boolean;
  /** Whether any field of an existing entry changed (always true for a created one). */
  changed: boolean;
  /**
   * When the entry was created for a project whose keys carried legacy per-key limits: the
   * smallest of them, which the entry takes so the project's limit stays what it was.
   */
  adoptedLegacyLimit?: number;
  /** Keys of the project whose legacy `concurrency` was removed (an entry makes it dead weight). */
  keysCleared: number;
}

/** Throws naming the field when a project entry breaks the handlers' own schema. */
function checkProjectEntry(project: ProjectEntry): void {
  const checked = projectEntrySchema().safeParse(project);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    throw new Error(`project ${project.id}: ${issue?.path.join(".") || "entry"}: ${issue?.message}`);
  }
}

/**
 * Creates project `id` in a key set, or changes the given fields of its entry; stamps
 * createdAt/updatedAt (updatedAt only when something changed). A project that so far had no
 * entry keeps its limit: the entry takes the smallest legacy limit written on its keys (the rule
 * `resolveProject` applies to a project without entry) unless `changes` sets one, and the now
 * ignored per-key values are removed. Pure: returns a changed copy.
 */
export function setProject(
  set: ApiKeySet,
  id: string,
  changes: ProjectChanges = {},
  now = new Date(),
): ProjectUpdate {
  const directory = parseApiKeySet(JSON.stringify(set));
  const next: ApiKeySet = structuredClone(set);
  const projects = (next.projects ??= []);
  const stamp = now.toISOString();
  let project = projects.find((entry) => entry.id === id);
  const created = project === undefined;
  let changed = created;
  let adoptedLegacyLimit: number | undefined;
  if (!project) {
    const fromKeys = directory.keyProjects.get(id);
    // A project known from its keys keeps the date it had: its earliest key's, if any says.
    project = fromKeys ? { id } : { id, createdAt: stamp };
    if (fromKeys?.createdAt !== undefined) project.createdAt = fromKeys.createdAt;
    project.updatedAt = stamp;
    if (fromKeys?.legacyLimit !== undefined) {
      project.concurrency = fromKeys.legacyLimit;
      adoptedLegacyLimit = fromKeys.legacyLimit;
    }
    projects.push(project);
  }
  const fields = project as unknown as Record<string, unknown>;
  for (const [field, value] of Object.entries(changes)) {
    if (value !== undefined && fields[field] !== value) {
      fields[field] = value;
      changed = true;
    }
  }
  if (changed) project.updatedAt = stamp;
  checkProjectEntry(project);
  let keysCleared = 0;
  for (const key of next.keys) {
    if (key.projectId === id && key.concurrency !== undefined) {
      delete key.concurrency;
      keysCleared++;
    }
  }
  return { set: next, project, created, changed, adoptedLegacyLimit, keysCleared };
}

/**
 * Creates project `id` in the local file, or changes the given fields of an existing one (see
 * `setProject`). Checked with the handlers' own project schema before writing. Returns the entry
 * as written and whether it was created.
 */
export function upsertProject(
  path: string,
  id: string,
  changes: ProjectChanges = {},
  now = new Date(),
): Omit<ProjectUpdate, "set"> {
  const secrets = readSecrets(path);
  const { set, ...update } = setProject(secrets.apiKeys, id, changes, now);
  if (update.changed || update.keysCleared > 0) writeSecrets(path, { ...secrets, apiKeys: set });
  return update;
}

/** One project `migrateLegacyLimits` touched. */
export interface MigrationStep {
  projectId: string;
  /** An entry was made, with the smallest of its keys' limits. */
  created: boolean;
  /** The project's limit as its entry holds it after the step (undefined: the default). */
  concurrency?: number;
  /** Keys whose `concurrency` was removed. */
  keysCleared: number;
}

/**
 * Moves legacy per-key limits onto projects: each project without entry whose keys carry a
 * `concurrency` gets an entry with the smallest of them (the limit it had), and `concurrency` is
 * removed from every key (for a project with an entry it was ignored already). So every
 * project's resolved limit is the same before and after. Idempotent: a set with no per-key limit
 * comes back unchanged, with no step. Pure: returns a changed copy.
 */
export function migrateLegacyLimits(
  set: ApiKeySet,
  now = new Date(),
): { set: ApiKeySet; steps: MigrationStep[] } {
  parseApiKeySet(JSON.stringify(set)); // refuses a malformed set before anything is moved
  const legacy = [
    ...new Set(set.keys.filter((key) => key.concurrency !== undefined).map((key) => key.projectId)),
  ];
  let next: ApiKeySet = structuredClone(set);
  const steps: MigrationStep[] = [];
  for (const projectId of legacy.sort()) {
    // No field changes: a project without entry adopts its legacy limit (one with an entry keeps
    // it as it is), and the project's keys are cleared.
    const update = setProject(next, projectId, {}, now);
    next = update.set;
    steps.push({
      projectId,
      created: update.created,
      concurrency: update.project.concurrency,
      keysCleared: update.keysCleared,
    });
  }
  return { set: next, steps };
}

/** `migrateLegacyLimits` on the local file; writes it only when something changed. */
export function migrateSecretsFile(path: string, now = new Date()): MigrationStep[] {
  const secrets = readSecrets(path);
  const { set, steps } = migrateLegacyLimits(secrets.apiKeys, now);
  if (steps.length > 0) writeSecrets(path, { ...secrets, apiKeys: set });
  return steps;
}
