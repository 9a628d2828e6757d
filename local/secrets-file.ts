import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { generateApiKey, type ApiKeyEntry, type ApiKeySet } from "../lib/apikeys";
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

export function readSecrets(path: string): LocalSecrets {
  return JSON.parse(readFileSync(path, "utf8")) as LocalSecrets;
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
 * Creates the secrets file on first run: a fresh token key and one API key for project `local`.
 * Returns the new key (to be shown once) when it made the file.
 */
export function ensureSecretsFile(path: string): { created: boolean; apiKey?: string; entry?: ApiKeyEntry } {
  if (existsSync(path)) {
    const existing = readSecrets(path);
    parseTokenKeySet(JSON.stringify(existing.tokenKeys));
    return { created: false };
  }
  const { key, entry } = generateApiKey("local", { name: "first local key" });
  writeSecrets(path, { apiKeys: { keys: [entry] }, tokenKeys: rotateTokenKeySet() });
  return { created: true, apiKey: key, entry };
}

/** Adds an API-key entry to the local file. */
export function addApiKeyEntry(path: string, entry: ApiKeyEntry): void {
  const secrets = readSecrets(path);
  secrets.apiKeys.keys.push(entry);
  writeSecrets(path, secrets);
}
