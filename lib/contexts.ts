import {
  constants,
  createCipheriv,
  createDecipheriv,
  generateKeyPair,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  randomUUID,
} from "node:crypto";
import { promisify } from "node:util";
import type { Principal } from "./apikeys";
import { BadRequestError, ConflictError, guardDependency, NotFoundError } from "./errors";
import { describeCause } from "./http";
import type { Logger } from "./logger";
import { objectKeys, type ObjectStore } from "./objects";
import type { RedisClient } from "./redis";
import { UUID_PATTERN } from "./session";
import { DEADLINE_LUA, keys, pastDeadline, requestDeadline } from "./store";
import { decryptForProxy, encryptForProxy, type TokenKeySet } from "./tokens";

/**
 * Contexts: a Chromium profile kept between sessions. The API keeps each context's metadata and
 * RSA key pair in Redis; the profile itself is an encrypted archive in the object store, which
 * only the Proxy (deployed) or the local connect stand-in decrypts.
 *
 * Archive format (`contexts/<projectId>/<contextId>.bin`), the same for an upload and for what a
 * session with `persist: true` writes back:
 *
 *   "WCC1" | uint16 big-endian L | L bytes: RSA-OAEP-SHA256(publicKey, aesKey) | 16 bytes IV |
 *   AES-256-CBC(aesKey, IV, zip of the user-data directory), PKCS#7 padded
 *
 * The 32-byte AES key and the IV are fresh for every archive. The private key that unwraps the
 * AES key is stored only encrypted (a compact JWE under the token key set from Secrets Manager)
 * and is never returned by the API.
 */
export const CONTEXT_ARCHIVE_MAGIC = "WCC1";
export const CONTEXT_CIPHER_ALGORITHM = "AES-256-CBC";
export const CONTEXT_IV_BYTES = 16;
/** Largest archive the local upload endpoint takes and the stand-in restores. */
export const MAX_CONTEXT_ARCHIVE_BYTES = 64 * 1024 * 1024;
/** How long an uploadUrl works. */
export const CONTEXT_UPLOAD_URL_SECONDS = 600;
/** Most contexts one project may hold. */
export const MAX_CONTEXTS_PER_PROJECT = 10_000;

/** A context as stored in Redis (`wc:{p}:context:<id>`). */
export interface ContextRecord {
  id: string;
  projectId: string;
  name?: string;
  /** Epoch milliseconds. */
  createdAt: number;
  updatedAt: number;
  /** SPKI PEM: what uploads and write-backs encrypt the AES key with. */
  publicKey: string;
  /** The matching PKCS#8 PEM private key, as a compact JWE under the token key set. */
  privateKeyJwe: string;
  /** Session that holds the context to persist it, and until when (see CREATE_SESSION_LUA). */
  persistHolder?: string;
  persistUntil?: number;
}

/** The Context object of the Browserbase v1 API. */
export interface ContextView {
  id: string;
  projectId: string;
  createdAt: string;
  updatedAt: string;
  name?: string;
}

/** What create and update (PUT) answer. */
export interface ContextUploadView {
  id: string;
  uploadUrl: string;
  publicKey: string;
  cipherAlgorithm: string;
  initializationVectorSize: number;
}

export function toContextView(record: ContextRecord): ContextView {
  const view: ContextView = {
    id: record.id,
    projectId: record.projectId,
    createdAt: new Date(record.createdAt).toISOString(),
    updatedAt: new Date(record.updatedAt).toISOString(),
  };
  if (record.name !== undefined) view.name = record.name;
  return view;
}

// ---------------------------------------------------------------------------------------------
// Encryption

/** A fresh RSA-2048 key pair for a context (PEM: SPKI public, PKCS#8 private). */
export async function generateContextKeyPair(): Promise<{ publicKey: string; privateKey: string }> {
  return promisify(generateKeyPair)("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
}

/** The private key, sealed for storage: only holders of the token key set can open it. */
export function sealPrivateKey(keySet: TokenKeySet, privateKeyPem: string): Promise<string> {
  return encryptForProxy(keySet, { contextPrivateKey: privateKeyPem });
}

/** The Proxy's (and the stand-in's) way back to the private key. */
export async function openPrivateKey(keySet: TokenKeySet, jwe: string): Promise<string> {
  const value = (await decryptForProxy(keySet, jwe)) as { contextPrivateKey?: unknown };
  if (typeof value?.contextPrivateKey !== "string") throw new Error("sealed context key has no private key");
  return value.contextPrivateKey;
}

/** Encrypts a zip of a user-data directory into the archive format above. */
export function encryptContextArchive(publicKeyPem: string, zip: Buffer): Buffer {
  const aesKey = randomBytes(32);
  const iv = randomBytes(CONTEXT_IV_BYTES);
  const wrapped = publicEncrypt(
    { key: publicKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
    aesKey,
  );
  const cipher = createCipheriv("aes-256-cbc", aesKey, iv);
  const length = Buffer.alloc(2);
  length.writeUInt16BE(wrapped.length);
  return Buffer.concat([
    Buffer.from(CONTEXT_ARCHIVE_MAGIC, "ascii"),
    length,
    wrapped,
    iv,
    cipher.update(zip),
    cipher.final(),
  ]);
}

/** Checks an archive's framing without decrypting it; returns what is wrong, or undefined. */
export function archiveFramingProblem(data: Buffer): string | undefined {
  if (data.length < 6 || data.subarray(0, 4).toString("ascii") !== CONTEXT_ARCHIVE_MAGIC) {
    return `the archive must start with "${CONTEXT_ARCHIVE_MAGIC}" (see the context archive format in the README)`;
  }
  const wrappedLength = data.readUInt16BE(4);
  if (wrappedLength !== 256)
    return "the wrapped key must be 256 bytes (RSA-OAEP with the context's 2048-bit key)";
  const body = data.length - 6 - wrappedLength - CONTEXT_IV_BYTES;
  if (body <= 0 || body % 16 !== 0)
    return "the AES-256-CBC ciphertext must be a whole number of 16-byte blocks";
  return undefined;
}

/** Decrypts an archive back into the zip it holds; throws when it is not one or the key does not fit. */
export function decryptContextArchive(privateKeyPem: string, data: Buffer): Buffer {
  const problem = archiveFramingProblem(data);
  if (problem) throw new Error(`not a context archive: ${problem}`);
  const wrappedLength = data.readUInt16BE(4);
  const wrapped = data.subarray(6, 6 + wrappedLength);
  const iv = data.subarray(6 + wrappedLength, 6 + wrappedLength + CONTEXT_IV_BYTES);
  const aesKey = privateDecrypt(
    { key: privateKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
    wrapped,
  );
  const decipher = createDecipheriv("aes-256-cbc", aesKey, iv);
  return Buffer.concat([
    decipher.update(data.subarray(6 + wrappedLength + CONTEXT_IV_BYTES)),
    decipher.final(),
  ]);
}

// ---------------------------------------------------------------------------------------------
// Redis

/**
 * Add a context under the project's cap, with a name unique in the project (case-insensitive).
 * KEYS: record, index, names. ARGV: limit, id, createdAt, deadline, nameKey ('' = none), field,
 * value, ... Returns 1 stored, 0 at the cap, 2 name taken, 3 past the deadline.
 */
export const CREATE_CONTEXT_LUA = `${DEADLINE_LUA}
if past_deadline(ARGV[4]) then return 3 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[1]) then return 0 end
if ARGV[5] ~= '' and redis.call('HEXISTS', KEYS[3], ARGV[5]) == 1 then return 2 end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[5], ARGV[2])
  redis.call('HSET', KEYS[1], 'nameKey', ARGV[5])
end
return 1
`;

/**
 * Remove a context's record, index entry and name. KEYS: record, index, names. ARGV: id,
 * deadline. Returns 1 when it existed, 0 when not, 3 past the deadline.
 */
export const DELETE_CONTEXT_LUA = `${DEADLINE_LUA}
if past_deadline(ARGV[2]) then return 3 end
local name_key = redis.call('HGET', KEYS[1], 'nameKey')
if name_key and redis.call('HGET', KEYS[3], name_key) == ARGV[1] then redis.call('HDEL', KEYS[3], name_key) end
local existed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return existed
`;

/**
 * A new archive was written: stamp updatedAt, and when a session's write-back (ARGV[2]) holds the
 * persist lock, release it. KEYS: record. ARGV: updatedAt, sessionId ('' = an upload). Returns 1,
 * or 0 when the context no longer exists.
 */
export const ARCHIVE_WRITTEN_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'updatedAt', ARGV[1])
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'persistHolder') == ARGV[2] then
  redis.call('HDEL', KEYS[1], 'persistHolder', 'persistUntil')
end
return 1
`;

/**
 * Frees the persist lock of a session that will write nothing back (its save was skipped or
 * failed). KEYS: record. ARGV: sessionId. Returns 1 when it held the lock.
 */
export const RELEASE_PERSIST_LUA = `
if redis.call('HGET', KEYS[1], 'persistHolder') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'persistHolder', 'persistUntil')
return 1
`;

type ContextScriptClient = RedisClient & {
  wcCreateContext(...args: (string | number)[]): Promise<number>;
  wcDeleteContext(...args: (string | number)[]): Promise<number>;
  wcContextArchiveWritten(...args: (string | number)[]): Promise<number>;
  wcReleaseContextPersist(...args: (string | number)[]): Promise<number>;
};

/** Registers the context scripts on a client. Call once per client. */
export function defineContextScripts(client: RedisClient): void {
  client.defineCommand("wcCreateContext", { numberOfKeys: 3, lua: CREATE_CONTEXT_LUA });
  client.defineCommand("wcDeleteContext", { numberOfKeys: 3, lua: DELETE_CONTEXT_LUA });
  client.defineCommand("wcContextArchiveWritten", { numberOfKeys: 1, lua: ARCHIVE_WRITTEN_LUA });
  client.defineCommand("wcReleaseContextPersist", { numberOfKeys: 1, lua: RELEASE_PERSIST_LUA });
}

function fieldsOf(record: ContextRecord): string[] {
  const fields = [
    "id", record.id,
    "projectId", record.projectId,
    "createdAt", String(record.createdAt),
    "updatedAt", String(record.updatedAt),
    "publicKey", record.publicKey,
    "privateKey", record.privateKeyJwe,
  ]; // prettier-ignore
  if (record.name !== undefined) fields.push("name", record.name);
  return fields;
}

function recordOf(hash: Record<string, string>): ContextRecord | undefined {
  if (!hash.id || !hash.publicKey) return undefined;
  const record: ContextRecord = {
    id: hash.id,
    projectId: hash.projectId,
    createdAt: Number(hash.createdAt),
    updatedAt: Number(hash.updatedAt),
    publicKey: hash.publicKey,
    privateKeyJwe: hash.privateKey,
  };
  if (hash.name !== undefined) record.name = hash.name;
  if (hash.persistHolder) record.persistHolder = hash.persistHolder;
  if (hash.persistUntil) record.persistUntil = Number(hash.persistUntil);
  return record;
}

export type AddContextOutcome = "stored" | "at-cap" | "name-taken";

/** Context metadata in Redis, in the project's hash-tagged keys. Redis failures are 503s. */
export class ContextStore {
  private readonly commandTimeoutMs: number;

  constructor(
    private readonly client: () => Promise<RedisClient>,
    options: { commandTimeoutMs?: number } = {},
  ) {
    this.commandTimeoutMs = options.commandTimeoutMs ?? 500;
  }

  private async scripts(): Promise<ContextScriptClient> {
    return (await this.client()) as ContextScriptClient;
  }

  async add(record: ContextRecord, limit: number): Promise<AddContextOutcome> {
    const p = record.projectId;
    const stored = await this.guard(async () =>
      (await this.scripts()).wcCreateContext(
        keys.context(p, record.id),
        keys.contexts(p),
        keys.contextNames(p),
        limit,
        record.id,
        record.createdAt,
        requestDeadline(this.commandTimeoutMs),
        record.name === undefined ? "" : record.name.toLowerCase(),
        ...fieldsOf(record),
      ),
    );
    const code = Number(stored);
    if (code === 3) throw pastDeadline();
    return code === 1 ? "stored" : code === 2 ? "name-taken" : "at-cap";
  }

  async get(projectId: string, id: string): Promise<ContextRecord | undefined> {
    const hash = await this.guard(async () => (await this.client()).hgetall(keys.context(projectId, id)));
    return recordOf(hash);
  }

  /** True when there was such a context. */
  async remove(projectId: string, id: string): Promise<boolean> {
    const removed = await this.guard(async () =>
      (await this.scripts()).wcDeleteContext(
        keys.context(projectId, id),
        keys.contexts(projectId),
        keys.contextNames(projectId),
        id,
        requestDeadline(this.commandTimeoutMs),
      ),
    );
    if (Number(removed) === 3) throw pastDeadline();
    return Number(removed) === 1;
  }

  /**
   * Records that a new archive was written (an upload, or a session's write-back, which also
   * releases that session's persist lock). False when the context was deleted meanwhile.
   */
  async archiveWritten(projectId: string, id: string, now: number, sessionId = ""): Promise<boolean> {
    const done = await this.guard(async () =>
      (await this.scripts()).wcContextArchiveWritten(keys.context(projectId, id), now, sessionId),
    );
    return Number(done) === 1;
  }

  /** Frees `sessionId`'s persist lock on the context (a write-back that will not happen). */
  async releasePersist(projectId: string, id: string, sessionId: string): Promise<boolean> {
    const released = await this.guard(async () =>
      (await this.scripts()).wcReleaseContextPersist(keys.context(projectId, id), sessionId),
    );
    return Number(released) === 1;
  }

  private guard<T>(operation: () => Promise<T>): Promise<T> {
    return guardDependency("Redis", operation);
  }
}

// ---------------------------------------------------------------------------------------------
// Operations

/** Makes the URL a client PUTs an archive to: a presigned S3 PUT, or the local stack's endpoint. */
export type ContextUploadUrl = (
  projectId: string,
  contextId: string,
  expiresInSeconds: number,
) => Promise<string>;

export interface ContextDeps {
  contexts: ContextStore;
  objects: ObjectStore;
  logger: Logger;
  now: () => number;
  tokenKeys: () => Promise<TokenKeySet>;
  uploadUrl: ContextUploadUrl;
  newId?: () => string;
  maxPerProject?: number;
}

/** The same 404 for an unknown id, a deleted context and another project's context. */
export function contextNotFound(id: string): NotFoundError {
  return new NotFoundError(`context ${id.slice(0, 64)} not found`);
}

/** A context of the principal's project, or a 404. */
export async function getContext(
  principal: Principal,
  id: string,
  deps: Pick<ContextDeps, "contexts">,
): Promise<ContextRecord> {
  if (!UUID_PATTERN.test(id)) throw contextNotFound(id);
  const record = await deps.contexts.get(principal.projectId, id.toLowerCase());
  if (!record) throw contextNotFound(id);
  return record;
}

async function uploadView(record: ContextRecord, deps: ContextDeps): Promise<ContextUploadView> {
  return {
    id: record.id,
    uploadUrl: await deps.uploadUrl(record.projectId, record.id, CONTEXT_UPLOAD_URL_SECONDS),
    publicKey: record.publicKey,
    cipherAlgorithm: CONTEXT_CIPHER_ALGORITHM,
    initializationVectorSize: CONTEXT_IV_BYTES,
  };
}

/** Creates a context: a key pair (private half sealed), metadata under the project's cap. */
export async function createContext(
  principal: Principal,
  body: { name?: string },
  deps: ContextDeps,
): Promise<{ record: ContextRecord; view: ContextUploadView }> {
  const name = body.name?.trim();
  if (body.name !== undefined && !name) throw new BadRequestError("name must not be blank");
  const { publicKey, privateKey } = await generateContextKeyPair();
  const now = deps.now();
  const record: ContextRecord = {
    id: (deps.newId ?? randomUUID)(),
    projectId: principal.projectId,
    createdAt: now,
    updatedAt: now,
    publicKey,
    privateKeyJwe: await sealPrivateKey(await deps.tokenKeys(), privateKey),
  };
  if (name) record.name = name;
  const limit = deps.maxPerProject ?? MAX_CONTEXTS_PER_PROJECT;
  const outcome = await deps.contexts.add(record, limit);
  if (outcome === "at-cap") {
    throw new ConflictError(
      `project ${principal.projectId} already has ${limit} contexts (the limit); delete unused ones first`,
    );
  }
  if (outcome === "name-taken") {
    throw new ConflictError(
      `name ${JSON.stringify(name)} is already used by another context of this project`,
    );
  }
  deps.logger.info("context created", { contextId: record.id, projectId: record.projectId });
  return { record, view: await uploadView(record, deps) };
}

/** `PUT /v1/contexts/{id}`: a fresh upload URL for the same key pair. */
export async function renewContextUpload(
  principal: Principal,
  id: string,
  deps: ContextDeps,
): Promise<ContextUploadView> {
  return uploadView(await getContext(principal, id, deps), deps);
}

/**
 * Deletes a context: its metadata and key pair go at once (creates naming it get a 400), and its
 * archive with them (without the private key nobody can open it). A session already running with
 * it keeps its browser's profile, and writes nothing back.
 */
export async function deleteContext(principal: Principal, id: string, deps: ContextDeps): Promise<void> {
  if (!UUID_PATTERN.test(id)) throw contextNotFound(id);
  const projectId = principal.projectId;
  const contextId = id.toLowerCase();
  if (!(await deps.contexts.remove(projectId, contextId))) throw contextNotFound(id);
  const objectKey = objectKeys.context(projectId, contextId);
  await deps.objects.delete(objectKey).catch((error: unknown) =>
    deps.logger.error("could not remove a deleted context's archive; remove it by hand", {
      contextId,
      projectId,
      objectKey,
      cause: describeCause(error),
    }),
  );
  deps.logger.info("context deleted", { contextId, projectId });
}
