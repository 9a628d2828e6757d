import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { generateApiKey, parseApiKeySet, type ApiKeyEntry, type ApiKeySet } from "../lib/apikeys";
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
