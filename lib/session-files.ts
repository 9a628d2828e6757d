import { ZipFile } from "yazl";
import { BadRequestError, ConflictError, guardDependency, PayloadTooLargeError } from "./errors";
import type { Logger } from "./logger";
import type { UploadedFile } from "./multipart";
import type { ObjectStore } from "./objects";
import type { RedisClient } from "./redis";
import { effectiveStatus, type SessionRecord } from "./session";
import { keys } from "./store";

/**
 * A session's files and CDP log: what the browser may upload (put there through the API), what
 * it downloaded (put there by the Proxy or the local stand-in), and the CDP calls its clients
 * made. Bytes live in the object store under the session's prefix; the lists of names and the
 * log live in Redis in the project's hash-tagged keys, expiring with the session's record.
 */

/** Where a client's `DOM.setFileInputFiles` names an uploaded file: `/tmp/.uploads/<name>`. */
export const UPLOADS_BROWSER_DIR = "/tmp/.uploads/";

export const SESSION_FILE_LIMITS = {
  /** Largest uploaded file: a Lambda request is at most 6 MB and a binary body arrives base64-encoded. */
  uploadBytes: 4 * 1024 * 1024,
  /** Most files one session may upload. */
  uploadsPerSession: 100,
  /** Most bytes of downloads kept per session (the Proxy and the stand-in stop storing past it). */
  downloadBytesPerSession: 256 * 1024 * 1024,
  /** Most downloaded files kept per session. */
  downloadsPerSession: 500,
  /** Log entries kept per session: the newest. */
  logEntries: 1000,
  /** Longest string kept in a logged request's params or a response's result; longer ones are cut. */
  logStringBytes: 1024,
  /** Largest JSON of one log entry after cutting; larger entries keep only method, ids and times. */
  logEntryBytes: 8 * 1024,
} as const;

/** Object-store keys of a session's files: the file name in base64url, so any name makes a safe key. */
export const sessionFileKeys = {
  upload: (projectId: string, sessionId: string, name: string) =>
    `sessions/${projectId}/${sessionId}/uploads/${Buffer.from(name).toString("base64url")}`,
  download: (projectId: string, sessionId: string, name: string) =>
    `sessions/${projectId}/${sessionId}/downloads/${Buffer.from(name).toString("base64url")}`,
};

/** Redis keys: name → size hashes of uploads and downloads, and the log list. */
export const sessionFileRedisKeys = {
  uploads: (projectId: string, sessionId: string) => `wc:{${projectId}}:uploads:${sessionId}`,
  downloads: (projectId: string, sessionId: string) => `wc:{${projectId}}:downloads:${sessionId}`,
  logs: (projectId: string, sessionId: string) => `wc:{${projectId}}:logs:${sessionId}`,
};

/**
 * A file name as the browser will see it: the upload's base name, printable, no path, at most 200
 * characters. Throws a 400 naming the problem.
 */
export function cleanUploadName(name: string): string {
  const base = (name.split(/[\\/]/).pop() ?? "").trim();
  const printable = [...base].filter((char) => char >= " " && char !== "\u007f").join("");
  if (printable === "" || printable === "." || printable === "..") {
    throw new BadRequestError("the file part needs a file name (its filename in Content-Disposition)");
  }
  if (Buffer.byteLength(printable) > 200) throw new BadRequestError("the file name is over 200 bytes");
  return printable;
}

/**
 * Record a stored file in the session's list, under the per-session cap, while the record still
 * exists. KEYS: list, record. ARGV: name, size, maxFiles, expireAt. Returns 1 stored, 0 at the cap,
 * 2 the session is gone.
 */
export const ADD_SESSION_FILE_LUA = `
if redis.call('EXISTS', KEYS[2]) == 0 then return 2 end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return 1
`;

type FileScriptClient = RedisClient & {
  wcAddSessionFile(...args: (string | number)[]): Promise<number>;
};

export function defineSessionFileScripts(client: RedisClient): void {
  client.defineCommand("wcAddSessionFile", { numberOfKeys: 2, lua: ADD_SESSION_FILE_LUA });
}

/** One CDP call as the log keeps it: Browserbase's SessionLog. */
export interface SessionLogEntry {
  method: string;
  /** The page's number in this session (1, 2, ... in the order pages were first seen); 0 for the browser. */
  pageId: number;
  /** The CDP session the call was made on ('' for the browser-level session). */
  sessionId: string;
  frameId?: string;
  loaderId?: string;
  request?: { params: Record<string, unknown>; rawBody: string; timestamp?: number };
  response?: { result: Record<string, unknown>; rawBody: string; timestamp?: number };
  timestamp?: number;
}

/** Cuts every string longer than the bound (page content: screenshots, bodies, HTML) in place of a copy. */
export function cutLongStrings(
  value: unknown,
  bound = SESSION_FILE_LIMITS.logStringBytes,
  depth = 0,
): unknown {
  if (typeof value === "string") {
    return value.length > bound ? `${value.slice(0, bound)}…[cut: ${value.length} characters]` : value;
  }
  if (depth > 12) return "…[cut: too deep]";
  if (Array.isArray(value)) return value.slice(0, 200).map((item) => cutLongStrings(item, bound, depth + 1));
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value).slice(0, 200))
      out[key] = cutLongStrings(item, bound, depth + 1);
    return out;
  }
  return value;
}

/** One entry ready for the log list: strings cut, and at most `logEntryBytes` of JSON. */
export function boundedLogEntry(entry: SessionLogEntry): string {
  const cut: SessionLogEntry = { ...entry };
  if (entry.request) {
    const params = cutLongStrings(entry.request.params) as Record<string, unknown>;
    cut.request = { params, rawBody: JSON.stringify(params), timestamp: entry.request.timestamp };
  }
  if (entry.response) {
    const result = cutLongStrings(entry.response.result) as Record<string, unknown>;
    cut.response = { result, rawBody: JSON.stringify(result), timestamp: entry.response.timestamp };
  }
  let text = JSON.stringify(cut);
  if (Buffer.byteLength(text) > SESSION_FILE_LIMITS.logEntryBytes) {
    const note = { cut: `entry over ${SESSION_FILE_LIMITS.logEntryBytes} bytes` };
    text = JSON.stringify({
      ...cut,
      request: cut.request && { params: note, rawBody: "", timestamp: cut.request.timestamp },
      response: cut.response && { result: note, rawBody: "", timestamp: cut.response.timestamp },
    });
  }
  return text;
}

/** The session-files part of the store (Redis lists and the object store). Failures are 503s. */
export class SessionFileStore {
  constructor(
    private readonly client: () => Promise<RedisClient>,
    private readonly objects: ObjectStore,
  ) {}

  private guard<T>(operation: () => Promise<T>): Promise<T> {
    return guardDependency("Redis", operation);
  }

  /** Adds a file to the session's uploads or downloads list (see ADD_SESSION_FILE_LUA). */
  async addFile(
    kind: "uploads" | "downloads",
    record: Pick<SessionRecord, "id" | "projectId">,
    name: string,
    size: number,
    maxFiles: number,
    expireAt: number,
  ): Promise<"stored" | "at-cap" | "gone"> {
    const code = await this.guard(async () =>
      ((await this.client()) as FileScriptClient).wcAddSessionFile(
        sessionFileRedisKeys[kind](record.projectId, record.id),
        keys.session(record.projectId, record.id),
        name,
        size,
        maxFiles,
        expireAt,
      ),
    );
    return Number(code) === 1 ? "stored" : Number(code) === 0 ? "at-cap" : "gone";
  }

  /** Names and sizes of the session's uploads or downloads. */
  async files(
    kind: "uploads" | "downloads",
    projectId: string,
    sessionId: string,
  ): Promise<Map<string, number>> {
    const hash = await this.guard(async () =>
      (await this.client()).hgetall(sessionFileRedisKeys[kind](projectId, sessionId)),
    );
    return new Map(Object.entries(hash).map(([name, size]) => [name, Number(size)]));
  }

  /** Appends log entries (already bounded) and keeps the newest `logEntries`, expiring with the record. */
  async appendLogs(projectId: string, sessionId: string, entries: string[], expireAt: number): Promise<void> {
    if (entries.length === 0) return;
    const key = sessionFileRedisKeys.logs(projectId, sessionId);
    await this.guard(async () => {
      const multi = (await this.client()).multi();
      multi.rpush(key, ...entries);
      multi.ltrim(key, -SESSION_FILE_LIMITS.logEntries, -1);
      multi.pexpireat(key, expireAt);
      const results = (await multi.exec()) ?? [];
      for (const [error] of results) if (error) throw error;
    });
  }

  /** The session's log, oldest first. */
  async logs(projectId: string, sessionId: string): Promise<SessionLogEntry[]> {
    const raw = await this.guard(async () =>
      (await this.client()).lrange(sessionFileRedisKeys.logs(projectId, sessionId), 0, -1),
    );
    const out: SessionLogEntry[] = [];
    for (const text of raw) {
      try {
        out.push(JSON.parse(text) as SessionLogEntry);
      } catch {
        // A malformed entry (a foreign writer's bug) is skipped, not a 500 for the whole log.
      }
    }
    return out;
  }

  get objectStore(): ObjectStore {
    return this.objects;
  }
}

/** When a session's lists expire: with its record. */
export function filesExpireAt(record: SessionRecord, retentionMs: number): number {
  return record.expiresAt + retentionMs;
}

/**
 * Stores an upload for a live session: the file under the session's prefix, its name in the
 * session's list. Refuses an ended session (400), a file over the limit (413), a full list
 * (409); if the list cannot be written the file is removed again.
 */
export async function uploadSessionFile(
  record: SessionRecord,
  file: UploadedFile,
  deps: { files: SessionFileStore; logger: Logger; now: () => number; retentionMs: number },
): Promise<string> {
  const status = effectiveStatus(record, deps.now());
  if (status !== "RUNNING") {
    throw new BadRequestError(
      `session ${record.id} has ended (${status}); files can be uploaded only to a running session`,
    );
  }
  if (file.data.length > SESSION_FILE_LIMITS.uploadBytes) {
    throw new PayloadTooLargeError(
      `the file is ${file.data.length} bytes; an upload may be at most ${SESSION_FILE_LIMITS.uploadBytes} bytes`,
    );
  }
  const name = cleanUploadName(file.fileName);
  const key = sessionFileKeys.upload(record.projectId, record.id, name);
  await deps.files.objectStore.put(key, file.data, "application/octet-stream");
  let outcome: "stored" | "at-cap" | "gone" | undefined;
  try {
    outcome = await deps.files.addFile(
      "uploads",
      record,
      name,
      file.data.length,
      SESSION_FILE_LIMITS.uploadsPerSession,
      filesExpireAt(record, deps.retentionMs),
    );
  } finally {
    if (outcome !== "stored") await deps.files.objectStore.delete(key).catch(() => undefined);
  }
  if (outcome === "at-cap") {
    throw new ConflictError(
      `session ${record.id} already has ${SESSION_FILE_LIMITS.uploadsPerSession} uploaded files (the limit)`,
    );
  }
  if (outcome === "gone") throw new BadRequestError(`session ${record.id} has ended; nothing was stored`);
  deps.logger.info("session file uploaded", {
    sessionId: record.id,
    projectId: record.projectId,
    bytes: file.data.length,
  });
  return name;
}

/** A zip of the session's downloads (an empty body when there are none, as Browserbase answers). */
export async function downloadsZip(record: SessionRecord, files: SessionFileStore): Promise<Buffer> {
  const names = await files.files("downloads", record.projectId, record.id);
  if (names.size === 0) return Buffer.alloc(0);
  const zip = new ZipFile();
  for (const name of [...names.keys()].sort()) {
    const data = await files.objectStore.get(sessionFileKeys.download(record.projectId, record.id, name));
    if (data) zip.addBuffer(data, name, { mtime: new Date(record.startedAt) });
  }
  zip.end();
  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
