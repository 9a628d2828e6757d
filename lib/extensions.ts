import { createHash, randomUUID } from "node:crypto";
import type { Principal } from "./apikeys";
import {
  DEFAULT_ARCHIVE_LIMITS,
  inspectExtensionArchive,
  MAX_EXTENSION_ARCHIVE_BYTES,
  type ArchiveLimits,
} from "./archive";
import { BadRequestError, ConflictError, guardDependency, NotFoundError } from "./errors";
import { describeCause } from "./http";
import type { Logger } from "./logger";
import type { UploadedFile } from "./multipart";
import { objectKeys, type ObjectStore } from "./objects";
import type { RedisClient } from "./redis";
import { UUID_PATTERN } from "./session";
import { DEADLINE_LUA, keys, pastDeadline, requestDeadline } from "./store";

/** An uploaded extension's metadata, as stored in Redis (`wc:{p}:extension:<id>`). */
export interface ExtensionRecord {
  id: string;
  projectId: string;
  fileName: string;
  /** Epoch milliseconds. */
  createdAt: number;
  updatedAt: number;
  /** Bytes of the .zip. */
  size: number;
  /** SHA-256 of the .zip, hex. */
  sha256: string;
  /** From manifest.json. */
  name: string;
  version: string;
  /** Where the .zip lives in the object store. */
  objectKey: string;
}

/** The Extension object of the Browserbase v1 API. */
export interface ExtensionView {
  id: string;
  fileName: string;
  projectId: string;
  createdAt: string;
  updatedAt: string;
}

export function toExtensionView(record: ExtensionRecord): ExtensionView {
  return {
    id: record.id,
    fileName: record.fileName,
    projectId: record.projectId,
    createdAt: new Date(record.createdAt).toISOString(),
    updatedAt: new Date(record.updatedAt).toISOString(),
  };
}

/**
 * Add an extension under the project's cap, atomically. KEYS: record, index. ARGV: limit, id,
 * createdAt, deadline, field, value, ... Returns 1 when stored, 0 when the project is at its cap,
 * 3 past the deadline (nothing written).
 */
export const CREATE_EXTENSION_LUA = `${DEADLINE_LUA}
if past_deadline(ARGV[4]) then return 3 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
return 1
`;

/**
 * Remove an extension's metadata and index entry. KEYS: record, index. ARGV: id, deadline.
 * Returns 1 when it existed, 0 when not, 3 past the deadline (nothing removed).
 */
export const DELETE_EXTENSION_LUA = `${DEADLINE_LUA}
if past_deadline(ARGV[2]) then return 3 end
local existed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return existed
`;

/** A deadline that never passes (epoch ms far in the future), for undo scripts. */
const NO_DEADLINE = 9e15;

type ExtensionScriptClient = RedisClient & {
  wcCreateExtension(...args: (string | number)[]): Promise<number>;
  wcDeleteExtension(...args: (string | number)[]): Promise<number>;
};

/** Registers the extension scripts on a client. Call once per client. */
export function defineExtensionScripts(client: RedisClient): void {
  client.defineCommand("wcCreateExtension", { numberOfKeys: 2, lua: CREATE_EXTENSION_LUA });
  client.defineCommand("wcDeleteExtension", { numberOfKeys: 2, lua: DELETE_EXTENSION_LUA });
}

function fieldsOf(record: ExtensionRecord): string[] {
  return [
    "id", record.id,
    "projectId", record.projectId,
    "fileName", record.fileName,
    "createdAt", String(record.createdAt),
    "updatedAt", String(record.updatedAt),
    "size", String(record.size),
    "sha256", record.sha256,
    "name", record.name,
    "version", record.version,
    "objectKey", record.objectKey,
  ]; // prettier-ignore
}

function recordOf(hash: Record<string, string>): ExtensionRecord | undefined {
  if (!hash.id) return undefined;
  return {
    id: hash.id,
    projectId: hash.projectId,
    fileName: hash.fileName,
    createdAt: Number(hash.createdAt),
    updatedAt: Number(hash.updatedAt),
    size: Number(hash.size),
    sha256: hash.sha256,
    name: hash.name,
    version: hash.version,
    objectKey: hash.objectKey,
  };
}

/** Extension metadata in Redis, in the project's hash-tagged keys. Redis failures are 503s. */
export class ExtensionStore {
  private readonly commandTimeoutMs: number;

  constructor(
    private readonly client: () => Promise<RedisClient>,
    options: { commandTimeoutMs?: number } = {},
  ) {
    this.commandTimeoutMs = options.commandTimeoutMs ?? 500;
  }

  /** Stores the record unless the project already has `limit` extensions; false at the cap. */
  async add(record: ExtensionRecord, limit: number): Promise<boolean> {
    const p = record.projectId;
    const stored = await this.guard(async () =>
      ((await this.client()) as ExtensionScriptClient).wcCreateExtension(
        keys.extension(p, record.id),
        keys.extensions(p),
        limit,
        record.id,
        record.createdAt,
        requestDeadline(this.commandTimeoutMs),
        ...fieldsOf(record),
      ),
    );
    if (Number(stored) === 3) throw pastDeadline();
    return Number(stored) === 1;
  }

  /**
   * Undoes an `add` whose caller saw it fail (a timeout): if the script ran before its reply was
   * lost, the metadata would point at an archive the caller removes. No deadline: undoing is
   * always safe. Best effort, not awaited.
   */
  voidAdd(projectId: string, id: string): void {
    void this.client()
      .then((client) =>
        (client as ExtensionScriptClient).wcDeleteExtension(
          keys.extension(projectId, id),
          keys.extensions(projectId),
          id,
          NO_DEADLINE,
        ),
      )
      .catch(() => undefined);
  }

  async get(projectId: string, id: string): Promise<ExtensionRecord | undefined> {
    const hash = await this.guard(async () => (await this.client()).hgetall(keys.extension(projectId, id)));
    return recordOf(hash);
  }

  /** True when there was such an extension. */
  async remove(projectId: string, id: string): Promise<boolean> {
    const removed = await this.guard(async () =>
      ((await this.client()) as ExtensionScriptClient).wcDeleteExtension(
        keys.extension(projectId, id),
        keys.extensions(projectId),
        id,
        requestDeadline(this.commandTimeoutMs),
      ),
    );
    if (Number(removed) === 3) throw pastDeadline();
    return Number(removed) === 1;
  }

  private guard<T>(operation: () => Promise<T>): Promise<T> {
    return guardDependency("Redis", operation);
  }
}

/** What the extension operations need. */
export interface ExtensionDeps {
  extensions: ExtensionStore;
  objects: ObjectStore;
  logger: Logger;
  now: () => number;
  newId?: () => string;
  limits?: Partial<ExtensionLimits>;
}

export interface ExtensionLimits extends ArchiveLimits {
  /** Largest .zip, in bytes. */
  maxArchiveBytes: number;
  /** Most extensions one project may hold at once. */
  maxPerProject: number;
}

export const DEFAULT_EXTENSION_LIMITS: ExtensionLimits = {
  ...DEFAULT_ARCHIVE_LIMITS,
  maxArchiveBytes: MAX_EXTENSION_ARCHIVE_BYTES,
  maxPerProject: 500,
};

export function extensionLimits(deps: ExtensionDeps): ExtensionLimits {
  return { ...DEFAULT_EXTENSION_LIMITS, ...deps.limits };
}

/** The same 404 for an unknown id and another project's extension. */
export function extensionNotFound(id: string): NotFoundError {
  return new NotFoundError(`extension ${id.slice(0, 64)} not found`);
}

/** A usable file name to show back: the upload's base name, printable, at most 255 characters. */
function cleanFileName(name: string): string {
  const base = name.split(/[\\/]/).pop() ?? "";
  const printable = [...base]
    .filter((char) => char >= " " && char !== "\u007f")
    .join("")
    .trim()
    .slice(0, 255);
  return printable || "extension.zip";
}

/**
 * Stores an uploaded extension: checks the archive (a 400 that names the problem, nothing
 * stored), writes the .zip to the object store, then its metadata to Redis under the project's
 * cap. If the metadata cannot be written, the .zip is removed again, so nothing half-written
 * stays behind.
 */
export async function createExtension(
  principal: Principal,
  file: UploadedFile,
  deps: ExtensionDeps,
): Promise<ExtensionRecord> {
  const limits = extensionLimits(deps);
  if (file.data.length === 0) throw new BadRequestError("file is empty: upload a .zip of the extension");
  const manifest = await inspectExtensionArchive(file.data, limits);
  const now = deps.now();
  const id = (deps.newId ?? randomUUID)();
  const record: ExtensionRecord = {
    id,
    projectId: principal.projectId,
    fileName: cleanFileName(file.fileName),
    createdAt: now,
    updatedAt: now,
    size: file.data.length,
    sha256: createHash("sha256").update(file.data).digest("hex"),
    name: manifest.name,
    version: manifest.version,
    objectKey: objectKeys.extension(principal.projectId, id),
  };
  await deps.objects.put(record.objectKey, file.data, "application/zip");
  let stored = false;
  try {
    stored = await deps.extensions.add(record, limits.maxPerProject);
  } catch (error) {
    // The caller is told 503: if the script ran after all, its metadata must go with the archive.
    deps.extensions.voidAdd(record.projectId, record.id);
    throw error;
  } finally {
    if (!stored) {
      await deps.objects.delete(record.objectKey).catch((error: unknown) =>
        deps.logger.error("could not remove the archive of an extension that was not stored", {
          extensionId: id,
          projectId: record.projectId,
          cause: describeCause(error),
        }),
      );
    }
  }
  if (!stored) {
    throw new ConflictError(
      `project ${principal.projectId} already has ${limits.maxPerProject} extensions (the limit); delete unused ones first`,
    );
  }
  deps.logger.info("extension created", {
    extensionId: id,
    projectId: record.projectId,
    name: record.name,
    version: record.version,
    bytes: record.size,
  });
  return record;
}

/** An extension of the principal's project, or a 404. */
export async function getExtension(
  principal: Principal,
  id: string,
  deps: Pick<ExtensionDeps, "extensions">,
): Promise<ExtensionRecord> {
  if (!UUID_PATTERN.test(id)) throw extensionNotFound(id);
  const record = await deps.extensions.get(principal.projectId, id.toLowerCase());
  if (!record) throw extensionNotFound(id);
  return record;
}

/**
 * Deletes an extension: its metadata goes at once (later creates naming it get a 400); its .zip
 * is retired, not removed, so sessions created with it still get it when their browser starts.
 */
export async function deleteExtension(principal: Principal, id: string, deps: ExtensionDeps): Promise<void> {
  if (!UUID_PATTERN.test(id)) throw extensionNotFound(id);
  const projectId = principal.projectId;
  const extensionId = id.toLowerCase();
  if (!(await deps.extensions.remove(projectId, extensionId))) throw extensionNotFound(id);
  const objectKey = objectKeys.extension(projectId, extensionId);
  await deps.objects.retire(objectKey).catch((error: unknown) =>
    // The metadata is gone, so the API already treats it as deleted; the lifecycle rule cannot
    // see an untagged object, so say which one to remove by hand.
    deps.logger.error("could not mark a deleted extension's archive for expiry", {
      extensionId,
      projectId,
      objectKey,
      cause: describeCause(error),
    }),
  );
  deps.logger.info("extension deleted", { extensionId, projectId });
}

/** An extension a create names must exist in the caller's project (else a 400 that says so). */
export async function checkSessionExtension(
  projectId: string,
  extensionId: string,
  deps: Pick<ExtensionDeps, "extensions">,
): Promise<string> {
  const id = extensionId.trim().toLowerCase();
  const record = UUID_PATTERN.test(id) ? await deps.extensions.get(projectId, id) : undefined;
  if (!record) {
    throw new BadRequestError(
      `extensionId ${extensionId.slice(0, 64)} is not an extension of this project: upload it with POST /v1/extensions first`,
    );
  }
  return record.id;
}
