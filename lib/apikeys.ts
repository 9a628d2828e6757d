import { createHash, randomBytes } from "node:crypto";
import { z } from "zod";
import { UnauthorizedError } from "./errors";

/** `wc_` followed by 32 random bytes in base64url (43 characters). */
export const API_KEY_PATTERN = /^wc_[A-Za-z0-9_-]{43}$/;

/** One entry of the API-key secret. Only the key's hash is stored, never the key. */
export interface ApiKeyEntry {
  /** `sha256:` + hex SHA-256 of the whole key text. */
  hash: string;
  projectId: string;
  /** Concurrent live sessions allowed for the project through this key; default from config. */
  concurrency?: number;
  name?: string;
  createdAt?: string;
}

/** The API-key secret value: `{"keys": [ApiKeyEntry, ...]}`. */
export interface ApiKeySet {
  keys: ApiKeyEntry[];
}

export interface Principal {
  projectId: string;
  /** Stable id of the key's holder, derived from the key hash (never from the key text). */
  principalId: string;
  concurrency: number;
  keyName?: string;
}

export const PROJECT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/**
 * Schemas are built by functions, not held in module constants: the handlers are serialized
 * into the Lambda package by Pulumi, which cannot serialize zod's bound methods.
 */
export function apiKeyEntrySchema() {
  return z.object({
    hash: z.string().regex(/^sha256:[0-9a-f]{64}$/, "hash must be sha256:<64 hex digits>"),
    projectId: z.string().regex(PROJECT_ID_PATTERN, "projectId must be 1-64 letters, digits, _ or -"),
    concurrency: z.number().int().min(1).max(100000).optional(),
    name: z.string().max(200).optional(),
    createdAt: z.string().optional(),
  });
}

/** Hash of an API key as stored in the secret. */
export function hashApiKey(key: string): string {
  return "sha256:" + createHash("sha256").update(key, "utf8").digest("hex");
}

/** The principal id for a key hash: a one-way function of the hash, so it reveals nothing. */
export function principalIdFor(hash: string): string {
  return (
    "prn_" +
    createHash("sha256")
      .update("wallcrawler-principal\0" + hash)
      .digest("base64url")
      .slice(0, 22)
  );
}

/** Mints a new API key and the entry to put in the secret. The key is shown once and never stored. */
export function generateApiKey(
  projectId: string,
  options: { concurrency?: number; name?: string; now?: Date } = {},
): { key: string; entry: ApiKeyEntry } {
  if (!PROJECT_ID_PATTERN.test(projectId)) {
    throw new Error("projectId must be 1-64 letters, digits, _ or -, starting with a letter or digit");
  }
  const key = "wc_" + randomBytes(32).toString("base64url");
  const entry: ApiKeyEntry = apiKeyEntrySchema().parse({
    hash: hashApiKey(key),
    projectId,
    concurrency: options.concurrency,
    name: options.name,
    createdAt: (options.now ?? new Date()).toISOString(),
  });
  return { key, entry };
}

/** An index of the secret's entries by hash: built once per fetched secret value. */
export type ApiKeyIndex = Map<string, ApiKeyEntry>;

/** Parses the API-key secret; throws with the path of the first bad field. */
export function parseApiKeySet(raw: string): ApiKeyIndex {
  const parsed = z.object({ keys: z.array(apiKeyEntrySchema()) }).safeParse(JSON.parse(raw));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`API-key secret is malformed at ${issue?.path.join(".") || "(root)"}: ${issue?.message}`);
  }
  const index: ApiKeyIndex = new Map();
  for (const entry of parsed.data.keys) index.set(entry.hash, entry);
  return index;
}

/**
 * Finds the principal for a presented key. The key is hashed before any comparison and looked
 * up by its hash, so the time taken does not depend on how many leading characters of a wrong
 * key match a real one.
 */
export function authenticate(
  presented: string | undefined,
  index: ApiKeyIndex,
  defaultConcurrency: number,
): Principal {
  if (presented === undefined || presented === "") {
    throw new UnauthorizedError("Missing API key: send it in the X-BB-API-Key header.");
  }
  if (!API_KEY_PATTERN.test(presented)) {
    throw new UnauthorizedError("Malformed API key: keys look like wc_ followed by 43 base64url characters.");
  }
  const hash = hashApiKey(presented);
  const entry = index.get(hash);
  if (!entry) throw new UnauthorizedError("Invalid API key.");
  return {
    projectId: entry.projectId,
    principalId: principalIdFor(hash),
    concurrency: entry.concurrency ?? defaultConcurrency,
    keyName: entry.name,
  };
}
