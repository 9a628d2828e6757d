import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { extname, join } from "node:path";
import { describeCause } from "../../lib/http";
import type { Logger } from "../../lib/logger";
import {
  boundedLogEntry,
  SESSION_FILE_LIMITS,
  sessionFileKeys,
  UPLOADS_BROWSER_DIR,
  type SessionFileStore,
  type SessionLogEntry,
} from "../../lib/session-files";
import type { BrowserMessage, CommandPolicy, RecordedCall } from "./cdp-pipe";

/** How often recorded CDP calls are written to the store (and once more when the session ends). */
export const LOG_FLUSH_MS = 500;

export interface SessionFilesDeps {
  sessionFiles?: SessionFileStore;
  logger: Logger;
  now: () => number;
}

/**
 * What the stand-in does with one session's files and log, through the browser's CDP pipe:
 * - **uploads**: a client's `DOM.setFileInputFiles` naming `/tmp/.uploads/<name>` gets the file
 *   uploaded through the API, fetched into the session's profile folder, instead;
 * - **downloads**: every download the browser completes (its folder is set through CDP at launch)
 *   is stored under the session's prefix at once, so the downloads route has it while the session
 *   still runs and after it ended;
 * - **log**: every client command with its answer, bounded, appended to the session's log.
 */
export class SessionFiles {
  private readonly downloadNames = new Map<string, string>();
  private readonly storedDownloads = new Set<string>();
  private readonly takenNames = new Set<string>();
  private downloadBytes = 0;
  private readonly pages = new Map<string, number>();
  private pending: string[] = [];
  private writes: Promise<unknown> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;
  private profileDir = "";

  constructor(
    private readonly session: { id: string; projectId: string; expiresAt: number; retentionMs: number },
    private readonly deps: SessionFilesDeps,
  ) {
    this.timer = setInterval(() => void this.flush(), LOG_FLUSH_MS);
    this.timer.unref();
  }

  private get fields() {
    return { sessionId: this.session.id, projectId: this.session.projectId };
  }

  private get expireAt(): number {
    return this.session.expiresAt + this.session.retentionMs;
  }

  /** The pipe's policy hooks for this session's browser, whose profile folder is `profileDir`. */
  policy(profileDir: string): CommandPolicy {
    this.profileDir = profileDir;
    return {
      resolveFilePaths: (files) => this.resolveUploads(files),
      observe: (message) => this.observe(message),
      record: (call) => this.record(call),
    };
  }

  /** The downloads folder the browser is told to use (inside the profile, removed with it). */
  get downloadsDir(): string {
    return join(this.profileDir, "downloads");
  }

  private async resolveUploads(files: unknown): Promise<string[] | string> {
    const store = this.deps.sessionFiles;
    if (!Array.isArray(files) || files.some((file) => typeof file !== "string"))
      return "files must be a list of paths";
    const outside = (files as string[]).find((file) => !file.startsWith(UPLOADS_BROWSER_DIR));
    if (outside !== undefined || !store) {
      return `DOM.setFileInputFiles may name only files uploaded to the session (${UPLOADS_BROWSER_DIR}<name>, after POST /v1/sessions/{id}/uploads), or pass the file's bytes`;
    }
    const dir = join(this.profileDir, "uploads");
    mkdirSync(dir, { recursive: true });
    const local: string[] = [];
    for (const file of files as string[]) {
      const name = file.slice(UPLOADS_BROWSER_DIR.length);
      if (name === "" || name.includes("/") || name === "." || name === "..")
        return `${file} is not a file name`;
      const data = await store.objectStore.get(
        sessionFileKeys.upload(this.session.projectId, this.session.id, name),
      );
      if (!data)
        return `no file named ${name} was uploaded to this session: POST it to /v1/sessions/{id}/uploads first`;
      // One folder per name, so the browser shows the file under its own name.
      const path = join(dir, String(local.length), name);
      mkdirSync(join(dir, String(local.length)), { recursive: true });
      writeFileSync(path, data, { mode: 0o600 });
      local.push(path);
    }
    return local;
  }

  private observe(message: BrowserMessage): void {
    const params = (message.params ?? {}) as Record<string, unknown>;
    if (message.method === "Browser.downloadWillBegin" || message.method === "Page.downloadWillBegin") {
      if (typeof params.guid === "string" && typeof params.suggestedFilename === "string")
        this.downloadNames.set(params.guid, params.suggestedFilename);
    } else if (message.method === "Browser.downloadProgress" || message.method === "Page.downloadProgress") {
      if (
        params.state === "completed" &&
        typeof params.guid === "string" &&
        !this.storedDownloads.has(params.guid)
      ) {
        this.storedDownloads.add(params.guid);
        this.writes = this.writes.then(() => this.storeDownload(params.guid as string));
      }
    }
  }

  /** A name not used yet in this session's downloads: `report.pdf`, then `report (2).pdf`, ... */
  private uniqueName(name: string): string {
    const clean =
      [...name].filter((char) => char >= " " && char !== "/" && char !== "\\").join("") || "download";
    let candidate = clean;
    for (let n = 2; this.takenNames.has(candidate); n++) {
      const ext = extname(clean);
      candidate = `${clean.slice(0, clean.length - ext.length)} (${n})${ext}`;
    }
    this.takenNames.add(candidate);
    return candidate;
  }

  private async storeDownload(guid: string): Promise<void> {
    const store = this.deps.sessionFiles;
    if (!store) return;
    const suggested = this.downloadNames.get(guid) ?? guid;
    // "allowAndName" names the file by its guid; "allow" by the name the site suggested.
    const path = [join(this.downloadsDir, guid), join(this.downloadsDir, suggested)].find((p) =>
      existsSync(p),
    );
    if (!path) {
      this.deps.logger.warn("a completed download was not found in the session's folder", {
        ...this.fields,
        guid,
      });
      return;
    }
    try {
      const size = statSync(path).size;
      if (
        this.takenNames.size >= SESSION_FILE_LIMITS.downloadsPerSession ||
        this.downloadBytes + size > SESSION_FILE_LIMITS.downloadBytesPerSession
      ) {
        this.deps.logger.warn("not storing a download: the session's downloads are at their limit", {
          ...this.fields,
          bytes: size,
        });
        return;
      }
      const name = this.uniqueName(suggested);
      const key = sessionFileKeys.download(this.session.projectId, this.session.id, name);
      await store.objectStore.put(key, readFileSync(path), "application/octet-stream");
      const outcome = await store.addFile(
        "downloads",
        this.session,
        name,
        size,
        SESSION_FILE_LIMITS.downloadsPerSession,
        this.expireAt,
      );
      if (outcome !== "stored") await store.objectStore.delete(key).catch(() => undefined);
      else this.downloadBytes += size;
      this.deps.logger.info("download stored", { ...this.fields, bytes: size });
    } catch (error) {
      this.deps.logger.error("could not store a download", { ...this.fields, cause: describeCause(error) });
    }
  }

  private pageNumber(targetId: string | undefined): number {
    if (targetId === undefined) return 0;
    let n = this.pages.get(targetId);
    if (n === undefined) {
      n = this.pages.size + 1;
      this.pages.set(targetId, n);
    }
    return n;
  }

  private record(call: RecordedCall): void {
    if (!this.deps.sessionFiles) return;
    const result = call.error === undefined ? (call.result ?? {}) : { error: call.error };
    const frameId = stringField(result, "frameId") ?? stringField(call.params, "frameId");
    const loaderId = stringField(result, "loaderId") ?? stringField(call.params, "loaderId");
    const entry: SessionLogEntry = {
      method: call.method,
      pageId: this.pageNumber(call.targetId),
      sessionId: call.sessionId ?? "",
      request: { params: call.params, rawBody: "", timestamp: call.sentAt },
      response: { result, rawBody: "", timestamp: call.answeredAt },
      timestamp: call.sentAt,
    };
    if (frameId !== undefined) entry.frameId = frameId;
    if (loaderId !== undefined) entry.loaderId = loaderId;
    this.pending.push(boundedLogEntry(entry));
    // Keep at most what the store keeps: a burst between flushes never grows without bound.
    if (this.pending.length > SESSION_FILE_LIMITS.logEntries) {
      this.pending.splice(0, this.pending.length - SESSION_FILE_LIMITS.logEntries);
    }
  }

  /** Writes the recorded calls so far. Never throws (a failure is logged; the entries are dropped). */
  flush(): Promise<void> {
    const store = this.deps.sessionFiles;
    const batch = this.pending;
    this.pending = [];
    if (!store || batch.length === 0) return this.writes.then(() => undefined);
    this.writes = this.writes.then(() =>
      store
        .appendLogs(this.session.projectId, this.session.id, batch, this.expireAt)
        .catch((error: unknown) =>
          this.deps.logger.warn("could not write the session's CDP log", {
            ...this.fields,
            entries: batch.length,
            cause: describeCause(error),
          }),
        ),
    );
    return this.writes.then(() => undefined);
  }

  /** The session ended: the last log entries and every download in flight are written. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}

function stringField(value: Record<string, unknown> | undefined, name: string): string | undefined {
  const field = value?.[name];
  return typeof field === "string" ? field : undefined;
}
