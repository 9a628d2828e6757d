import { createWriteStream, lstatSync, mkdirSync, readdirSync, rmSync, type Stats } from "node:fs";
import { dirname, join, resolve, sep } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Entry } from "yauzl";
import { ZipFile as ZipWriter } from "yazl";
import { eachEntry, openEntry, openZip, readAtMost } from "../../lib/archive";
import type { RuntimeConfig } from "../../lib/config";
import {
  decryptContextArchive,
  encryptContextArchive,
  MAX_CONTEXT_ARCHIVE_BYTES,
  openPrivateKey,
  type ContextStore,
} from "../../lib/contexts";
import { describeCause } from "../../lib/http";
import type { Logger } from "../../lib/logger";
import { objectKeys, type ObjectStore } from "../../lib/objects";
import type { SecretCache } from "../../lib/secrets";
import { parseTokenKeySet } from "../../lib/tokens";
import type { ChromiumProcess } from "./browser";

/**
 * Contexts in the stand-in: a session created with `browserSettings.context` starts its browser
 * in the context's profile, and one with `persist: true` writes the profile back when it ends
 * (what the Proxy does deployed). The archive's format and keys are lib/contexts.ts's; this file
 * decides what of a Chromium user-data folder is kept, unpacks it safely and packs it again.
 */

/**
 * What a saved context keeps of the user-data folder, relative to it. A trailing slash is a
 * folder with everything under it, less `SKIPPED_FOLDERS`. The state sites keep (cookies, Web
 * Storage, IndexedDB, Web SQL, the File System API) and the profile's own settings and form and
 * password data; not history, caches, service workers, the unpacked extension or downloads.
 */
export const PROFILE_STATE: readonly string[] = [
  "Local State",
  "Default/Preferences",
  "Default/Secure Preferences",
  "Default/Cookies",
  "Default/Cookies-journal",
  // Where other Chromium builds keep Cookies and TransportSecurity.
  "Default/Network/",
  "Default/Network Persistent State",
  "Default/TransportSecurity",
  "Default/Local Storage/",
  "Default/Session Storage/",
  "Default/IndexedDB/",
  // The quota database that indexes the storage above, and non-default storage buckets.
  "Default/WebStorage/",
  "Default/databases/",
  "Default/File System/",
  "Default/Web Data",
  "Default/Web Data-journal",
  "Default/Login Data",
  "Default/Login Data-journal",
  "Default/Login Data For Account",
  "Default/Login Data For Account-journal",
];

/** Folders never saved wherever they appear under `PROFILE_STATE`: caches the browser rebuilds. */
export const SKIPPED_FOLDERS: ReadonlySet<string> = new Set([
  "Cache",
  "Code Cache",
  "GPUCache",
  "CacheStorage",
  "ScriptCache",
  "DawnGraphiteCache",
  "DawnWebGPUCache",
  "GrShaderCache",
  "ShaderCache",
  "Crashpad",
]);

/**
 * Top-level names of an archive that are not unpacked into the profile: the browser's own
 * singleton lock files (a restored one would make Chromium think another browser holds the
 * profile), and folders the stand-in owns (the session's extension, its downloads, the
 * browser's config and crash folders, and the stand-in's own entries below).
 */
const NOT_RESTORED = new Set([
  "SingletonLock",
  "SingletonSocket",
  "SingletonCookie",
  "extensions",
  "downloads",
  ".config",
  ".cache",
  ".wallcrawler",
]);

/**
 * The browser's session cookies (no expiry) at the moment the session ended, as JSON. Chromium
 * drops session cookies when it starts on a profile (unless it restores its tabs), so they are
 * kept beside the profile in this entry and set again over CDP before a client connects.
 */
export const SESSION_COOKIES_ENTRY = ".wallcrawler/session-cookies.json";

/** Bounds on a context's profile, when packed and when unpacked. */
export interface ProfileLimits {
  /** Most files (and folders) in the archive. */
  maxEntries: number;
  /** Most bytes the files hold, unpacked. */
  maxUncompressedBytes: number;
  /** Most bytes of the zip (the encrypted archive is a few hundred bytes larger). */
  maxZipBytes: number;
}

export const DEFAULT_PROFILE_LIMITS: ProfileLimits = {
  maxEntries: 50_000,
  maxUncompressedBytes: 512 * 1024 * 1024,
  maxZipBytes: MAX_CONTEXT_ARCHIVE_BYTES - 1024,
};

/** Most session cookies kept (Chromium itself keeps at most 3,300 cookies in all). */
const MAX_SESSION_COOKIES = 10_000;
const MAX_SESSION_COOKIES_BYTES = 16 * 1024 * 1024;

/** A session cookie as kept in `SESSION_COOKIES_ENTRY` (the fields of CDP's `Network.Cookie` that `Storage.setCookies` takes back). */
export interface SavedCookie {
  name: string;
  value: string;
  domain: string;
  path: string;
  secure: boolean;
  httpOnly: boolean;
  sameSite?: string;
  priority?: string;
  sourceScheme?: string;
  sourcePort?: number;
  partitionKey?: unknown;
}

/** The profile is larger than a context may be: nothing is saved. */
export class ProfileTooLargeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProfileTooLargeError";
  }
}

// ---------------------------------------------------------------------------------------------
// Packing

interface ProfileFile {
  path: string;
  name: string;
  stats: Stats;
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** The files of `PROFILE_STATE` present in `profileDir` (regular files only: no links). */
export function profileStateFiles(profileDir: string, limits = DEFAULT_PROFILE_LIMITS): ProfileFile[] {
  const files: ProfileFile[] = [];
  let bytes = 0;
  const add = (path: string, name: string, stats: Stats) => {
    files.push({ path, name, stats });
    bytes += stats.size;
    if (files.length > limits.maxEntries) {
      throw new ProfileTooLargeError(`the profile has more than ${limits.maxEntries} files to keep`);
    }
    if (bytes > limits.maxUncompressedBytes) {
      throw new ProfileTooLargeError(
        `the profile holds more than ${limits.maxUncompressedBytes} bytes to keep`,
      );
    }
  };
  const walk = (dir: string, prefix: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        if (!SKIPPED_FOLDERS.has(entry.name)) walk(join(dir, entry.name), `${prefix}${entry.name}/`);
      } else if (entry.isFile()) {
        const path = join(dir, entry.name);
        add(path, `${prefix}${entry.name}`, lstatSync(path));
      }
    }
  };
  for (const item of PROFILE_STATE) {
    const folder = item.endsWith("/");
    const path = join(profileDir, folder ? item.slice(0, -1) : item);
    const stats = lstatOrUndefined(path);
    if (!stats) continue;
    if (folder && stats.isDirectory()) walk(path, item);
    else if (!folder && stats.isFile()) add(path, item, stats);
  }
  return files;
}

/**
 * Zips the state a context keeps of a (stopped) browser's profile, with the session cookies
 * beside it. Throws `ProfileTooLargeError` past `limits`.
 */
export async function zipProfileState(
  profileDir: string,
  sessionCookies: SavedCookie[],
  limits = DEFAULT_PROFILE_LIMITS,
): Promise<{ zip: Buffer; files: number }> {
  const files = profileStateFiles(profileDir, limits);
  const writer = new ZipWriter();
  for (const file of files) {
    writer.addFile(file.path, file.name, { mtime: file.stats.mtime, mode: 0o600 });
  }
  if (sessionCookies.length > 0) {
    writer.addBuffer(Buffer.from(JSON.stringify(sessionCookies)), SESSION_COOKIES_ENTRY, { mode: 0o600 });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  const written = new Promise<void>((resolvePromise, reject) => {
    writer.on("error", reject);
    const output = writer.outputStream as Readable;
    output.on("error", reject);
    output.on("data", (chunk: Buffer) => {
      size += chunk.length;
      // Past the limit the rest is drained and dropped: memory stays bounded.
      if (size <= limits.maxZipBytes) chunks.push(chunk);
    });
    output.on("end", () => resolvePromise());
  });
  writer.end();
  await written;
  if (size > limits.maxZipBytes) {
    throw new ProfileTooLargeError(`the profile zips to more than ${limits.maxZipBytes} bytes`);
  }
  return { zip: Buffer.concat(chunks), files: files.length };
}

// ---------------------------------------------------------------------------------------------
// Unpacking

function readLimited(stream: Readable, maxBytes: number, what: string): Promise<Buffer> {
  return readAtMost(stream, maxBytes, () => new Error(`${what} is over ${maxBytes} bytes`));
}

/** Unix file type bits of an entry made on Unix (0 when the zip does not say). */
function unixFileType(entry: Entry): number {
  return (entry.externalFileAttributes >>> 16) & 0o170000;
}

/** Parses `SESSION_COOKIES_ENTRY`, keeping only well-formed cookies. */
export function parseSessionCookies(bytes: Buffer): SavedCookie[] {
  const parsed: unknown = JSON.parse(bytes.toString("utf8"));
  if (!Array.isArray(parsed)) throw new Error(`${SESSION_COOKIES_ENTRY} is not a JSON array`);
  return parsed
    .filter(
      (c): c is SavedCookie =>
        typeof c === "object" &&
        c !== null &&
        typeof c.name === "string" &&
        typeof c.value === "string" &&
        typeof c.domain === "string" &&
        c.domain !== "" &&
        typeof c.path === "string",
    )
    .slice(0, MAX_SESSION_COOKIES);
}

/**
 * Unpacks a context's zip into an (empty) profile folder: relative paths that stay inside it
 * only, regular files and folders only (links are skipped), at most `limits` entries and bytes
 * (judged from the central directory, and again as entries inflate), and not the names the
 * stand-in owns (`NOT_RESTORED`). Returns the session cookies kept beside the profile. Throws
 * when the zip is damaged, unsafe or too large (the caller then empties the folder).
 */
export async function unzipProfile(
  zip: Buffer,
  profileDir: string,
  limits = DEFAULT_PROFILE_LIMITS,
): Promise<{ files: number; sessionCookies: SavedCookie[] }> {
  const root = resolve(profileDir);
  const zipfile = await openZip(zip);
  if (zipfile.entryCount > limits.maxEntries) {
    zipfile.close();
    throw new Error(`the archive has ${zipfile.entryCount} entries; the limit is ${limits.maxEntries}`);
  }
  let files = 0;
  let bytes = 0;
  let sessionCookies: SavedCookie[] = [];
  await eachEntry(zipfile, async (entry) => {
    const name = entry.fileName;
    if (name === SESSION_COOKIES_ENTRY) {
      const text = await readLimited(await openEntry(zipfile, entry), MAX_SESSION_COOKIES_BYTES, name);
      sessionCookies = parseSessionCookies(text);
      return;
    }
    if (NOT_RESTORED.has(name.split("/")[0])) return;
    const target = resolve(root, name);
    if (!target.startsWith(root + sep))
      throw new Error(`archive entry ${name} would land outside the profile`);
    const type = unixFileType(entry);
    if (name.endsWith("/")) {
      mkdirSync(target, { recursive: true, mode: 0o700 });
      return;
    }
    if (type !== 0 && type !== 0o100000) return; // a link or a device: never
    bytes += entry.uncompressedSize;
    if (bytes > limits.maxUncompressedBytes) {
      throw new Error(`the archive unpacks to more than ${limits.maxUncompressedBytes} bytes`);
    }
    mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
    // yauzl checks the inflated size against the declared one (validateEntrySizes).
    await pipeline(await openEntry(zipfile, entry), createWriteStream(target, { mode: 0o600 }));
    files++;
  });
  return { files, sessionCookies };
}

function emptyFolder(dir: string): void {
  for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// Session cookies over CDP

interface CdpCookie extends SavedCookie {
  session?: boolean;
  expires?: number;
}

/** The browser's session cookies now (rejects when it cannot tell: it has exited). */
async function readSessionCookies(browser: ChromiumProcess): Promise<SavedCookie[]> {
  const { cookies } = await browser.call<{ cookies: CdpCookie[] }>("Storage.getCookies", {}, 5000);
  return cookies
    .filter((cookie) => cookie.session === true)
    .slice(0, MAX_SESSION_COOKIES)
    .map((cookie) => {
      const saved: SavedCookie = {
        name: cookie.name,
        value: cookie.value,
        domain: cookie.domain,
        path: cookie.path,
        secure: cookie.secure,
        httpOnly: cookie.httpOnly,
      };
      if (cookie.sameSite !== undefined) saved.sameSite = cookie.sameSite;
      if (cookie.priority !== undefined) saved.priority = cookie.priority;
      if (cookie.sourceScheme !== undefined) saved.sourceScheme = cookie.sourceScheme;
      if (cookie.sourcePort !== undefined) saved.sourcePort = cookie.sourcePort;
      if (cookie.partitionKey !== undefined) saved.partitionKey = cookie.partitionKey;
      return saved;
    });
}

/**
 * A saved cookie as `Storage.setCookies` takes it, without an expiry (so it stays a session
 * cookie). A host-only cookie (its domain without a leading dot) is set through a URL of its
 * host: a `domain` would make it a domain cookie, sent to subdomains too.
 */
export function cookieParam(cookie: SavedCookie): Record<string, unknown> {
  const { domain, ...rest } = cookie;
  const param: Record<string, unknown> = { ...rest };
  if (domain.startsWith(".")) param.domain = domain;
  else
    param.url = `${cookie.secure ? "https" : "http"}://${domain}${cookie.path.startsWith("/") ? cookie.path : "/"}`;
  return param;
}

// ---------------------------------------------------------------------------------------------
// One session's context

/** What a session's context needs from the runtime (the connect server's deps satisfy it). */
export interface SessionContextDeps {
  config: RuntimeConfig;
  secrets: SecretCache;
  logger: Logger;
  /** Epoch milliseconds. */
  now: () => number;
  contexts?: ContextStore;
  objects?: ObjectStore;
}

/**
 * How the restore went: nothing to restore yet (a new context), restored, an archive that could
 * not be used (damaged, not this context's key, too large: the session starts fresh, and a
 * write-back replaces it), or a dependency that did not answer (the session starts fresh, and
 * nothing is written back, so the stored profile is not replaced by an empty one).
 */
export type RestoreOutcome = "fresh" | "restored" | "unusable" | "unavailable";

function isDependencyFailure(error: unknown): boolean {
  return (error as { statusCode?: number } | null)?.statusCode === 503;
}

/** The context of one session: restores its profile before the browser starts, and saves it when the session ends. */
export class SessionContext {
  /** Set once `restore` has run. */
  outcome: RestoreOutcome | undefined;
  private sessionCookies: SavedCookie[] = [];

  constructor(
    readonly session: { id: string; projectId: string; contextId: string; persist: boolean },
    private readonly deps: SessionContextDeps,
  ) {}

  private get fields(): Record<string, unknown> {
    return {
      sessionId: this.session.id,
      projectId: this.session.projectId,
      contextId: this.session.contextId,
    };
  }

  /**
   * Fills a fresh profile folder with the context's saved profile (before the browser starts).
   * Never throws: without a usable archive the browser starts with a fresh profile, as for a
   * new context, and the reason is logged.
   */
  async restore(profileDir: string): Promise<void> {
    const { contexts, objects, logger } = this.deps;
    const { projectId, contextId } = this.session;
    try {
      if (!contexts || !objects) {
        this.outcome = "unavailable";
        logger.error(
          "the session has a context, but no object store is configured (OBJECT_STORE)",
          this.fields,
        );
        return;
      }
      const record = await contexts.get(projectId, contextId);
      if (!record) {
        this.outcome = "unusable";
        logger.warn("the session's context no longer exists; starting with a fresh profile", this.fields);
        return;
      }
      const archive = await objects.get(objectKeys.context(projectId, contextId));
      if (!archive) {
        this.outcome = "fresh";
        logger.info("the context has no saved profile yet; starting with a fresh one", this.fields);
        return;
      }
      if (archive.length > MAX_CONTEXT_ARCHIVE_BYTES) {
        throw new Error(`the archive is ${archive.length} bytes; the limit is ${MAX_CONTEXT_ARCHIVE_BYTES}`);
      }
      const keySet = await this.deps.secrets.getParsed(this.deps.config.tokenKeysSecretRef, parseTokenKeySet);
      const zip = decryptContextArchive(await openPrivateKey(keySet, record.privateKeyJwe), archive);
      const { files, sessionCookies } = await unzipProfile(zip, profileDir);
      this.sessionCookies = sessionCookies;
      this.outcome = "restored";
      logger.info("context profile restored", {
        ...this.fields,
        archiveBytes: archive.length,
        files,
        sessionCookies: sessionCookies.length,
      });
    } catch (error) {
      this.outcome = isDependencyFailure(error) ? "unavailable" : "unusable";
      this.sessionCookies = [];
      try {
        emptyFolder(profileDir);
      } catch {
        // launchChromium made the folder; what is left of a partial unpack only costs disk.
      }
      // The cause names what failed (a crypto or zip error); it never holds key material.
      logger.error("could not restore the context's profile; starting with a fresh one", {
        ...this.fields,
        outcome: this.outcome,
        cause: describeCause(error),
      });
    }
  }

  /** Sets the restored session cookies in the started browser, before any client connects. Never throws. */
  async applySessionCookies(browser: ChromiumProcess): Promise<void> {
    if (this.sessionCookies.length === 0) return;
    const params = this.sessionCookies.map(cookieParam);
    try {
      await browser.call("Storage.setCookies", { cookies: params }, 10_000);
      return;
    } catch {
      // One malformed cookie fails the whole call: set them one by one, keeping the rest.
    }
    let failed = 0;
    for (const cookie of params) {
      await browser.call("Storage.setCookies", { cookies: [cookie] }, 5000).catch(() => failed++);
    }
    if (failed > 0)
      this.deps.logger.warn("some session cookies of the context could not be set", {
        ...this.fields,
        failed,
      });
  }

  /**
   * The write-back of a session with `persist: true`, once its clients are gone: reads the
   * session cookies, quits the browser gracefully (so Chromium writes its cookie and storage
   * databases), zips `PROFILE_STATE`, encrypts it with the context's public key, stores it under
   * the context's key and stamps the context (which releases this session's persist lock). Skips
   * (and logs why) when the context was deleted, another session persists it now, the profile is
   * too large, or its saved profile could not be read at the start. Never throws.
   */
  async save(browser: ChromiumProcess): Promise<void> {
    if (!this.session.persist) return;
    try {
      await this.writeBack(browser);
    } finally {
      // Whatever happened, this session is done with the context: free its persist lock now
      // rather than at the end of the grace window (a no-op once a write-back released it).
      const { id: sessionId, projectId, contextId } = this.session;
      await this.deps.contexts?.releasePersist(projectId, contextId, sessionId).catch(() => undefined);
    }
  }

  private async writeBack(browser: ChromiumProcess): Promise<void> {
    const { contexts, objects, logger } = this.deps;
    const { id: sessionId, projectId, contextId } = this.session;
    if (!contexts || !objects || this.outcome === undefined || this.outcome === "unavailable") {
      logger.warn(
        "not saving the context: its saved profile could not be read when the session started, and an empty one must not replace it",
        this.fields,
      );
      return;
    }
    try {
      let sessionCookies: SavedCookie[] = [];
      try {
        sessionCookies = await readSessionCookies(browser);
      } catch (error) {
        logger.warn("could not read the browser's session cookies; saving the profile without them", {
          ...this.fields,
          cause: describeCause(error),
        });
      }
      if (!(await browser.quit())) {
        logger.warn("the browser did not quit by itself; saving what its profile holds", this.fields);
      }
      let packed: { zip: Buffer; files: number };
      try {
        packed = await zipProfileState(browser.profileDir, sessionCookies);
      } catch (error) {
        if (!(error instanceof ProfileTooLargeError)) throw error;
        logger.error("not saving the context: the profile is too large", {
          ...this.fields,
          reason: error.message,
        });
        return;
      }
      const record = await contexts.get(projectId, contextId);
      if (!record) {
        logger.info("not saving the context: it was deleted during the session", this.fields);
        return;
      }
      if (record.persistHolder !== undefined && record.persistHolder !== sessionId) {
        logger.warn(
          "not saving the context: another session persists it now (this write-back came too late)",
          {
            ...this.fields,
            holder: record.persistHolder,
          },
        );
        return;
      }
      const archive = encryptContextArchive(record.publicKey, packed.zip);
      if (archive.length > MAX_CONTEXT_ARCHIVE_BYTES) {
        logger.error("not saving the context: the profile is too large", {
          ...this.fields,
          archiveBytes: archive.length,
          limit: MAX_CONTEXT_ARCHIVE_BYTES,
        });
        return;
      }
      const key = objectKeys.context(projectId, contextId);
      await objects.put(key, archive, "application/octet-stream");
      if (!(await contexts.archiveWritten(projectId, contextId, this.deps.now(), sessionId))) {
        // Deleted between the check and the write: its key pair is gone, so the archive goes too.
        await objects.delete(key).catch(() => undefined);
        logger.info("not saving the context: it was deleted during the session", this.fields);
        return;
      }
      logger.info("context profile saved", {
        ...this.fields,
        archiveBytes: archive.length,
        files: packed.files,
        sessionCookies: sessionCookies.length,
      });
    } catch (error) {
      logger.error("could not save the context's profile", { ...this.fields, cause: describeCause(error) });
    }
  }
}
