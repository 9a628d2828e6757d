import { createWriteStream, mkdirSync } from "node:fs";
import { dirname, resolve, sep } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fromBuffer, type Entry, type ZipFile } from "yauzl";
import { BadRequestError } from "./errors";

/**
 * Limits on an extension's .zip. The compressed size is bounded by what API Gateway and Lambda
 * carry (see `MAX_EXTENSION_ARCHIVE_BYTES`); these bound what it unpacks to, so a zip bomb is
 * refused from its central directory before anything is inflated, and again while unpacking.
 */
export interface ArchiveLimits {
  /** Most entries (files and folders). */
  maxEntries: number;
  /** Most bytes all entries unpack to. */
  maxUncompressedBytes: number;
}

/**
 * Largest .zip accepted, in bytes. A Lambda's synchronous request payload is at most 6 MB, and
 * API Gateway hands a binary body to it base64-encoded (4/3 larger): 4 MiB of file plus the
 * multipart framing stays under that.
 */
export const MAX_EXTENSION_ARCHIVE_BYTES = 4 * 1024 * 1024;

/** Chrome extensions unpack to a few MB (Stagehand's: 2.6 MB in 8 files); these leave ample room. */
export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = {
  maxEntries: 2000,
  maxUncompressedBytes: 64 * 1024 * 1024,
};

/** A manifest.json larger than this is not a manifest. */
const MAX_MANIFEST_BYTES = 1024 * 1024;

/** What an inspected extension archive holds. */
export interface ExtensionManifestSummary {
  name: string;
  version: string;
  manifestVersion: number;
  entries: number;
  uncompressedBytes: number;
}

/** Opens a zip for reading entry by entry; absolute names, `..` and backslashes are refused by yauzl. */
export function openZip(buffer: Buffer): Promise<ZipFile> {
  return new Promise((resolvePromise, reject) => {
    fromBuffer(
      buffer,
      { lazyEntries: true, validateEntrySizes: true, decodeStrings: true, strictFileNames: true },
      (error, zipfile) => (error ? reject(error) : resolvePromise(zipfile)),
    );
  });
}

export function openEntry(zipfile: ZipFile, entry: Entry): Promise<Readable> {
  return new Promise((resolvePromise, reject) => {
    zipfile.openReadStream(entry, (error, stream) => (error ? reject(error) : resolvePromise(stream)));
  });
}

/** Walks every entry in order; `visit` may read the entry before the next one is read. */
export async function eachEntry(zipfile: ZipFile, visit: (entry: Entry) => Promise<void>): Promise<void> {
  await new Promise<void>((resolvePromise, reject) => {
    let failed = false;
    const fail = (error: unknown) => {
      if (failed) return;
      failed = true;
      zipfile.close();
      reject(error);
    };
    zipfile.on("error", fail);
    zipfile.on("end", () => {
      if (!failed) resolvePromise();
    });
    zipfile.on("entry", (entry: Entry) => {
      visit(entry).then(() => zipfile.readEntry(), fail);
    });
    zipfile.readEntry();
  });
}

/** Turns yauzl's wording into a message that says what is wrong with the upload. */
function archiveProblem(error: unknown): BadRequestError {
  if (error instanceof BadRequestError) return error;
  const message = String((error as Error)?.message ?? error);
  if (/absolute path|invalid relative path|invalid characters in fileName/i.test(message)) {
    return new BadRequestError(
      `the extension archive has an entry with an unsafe path (${message.slice(0, 200)}); entries must be relative paths inside the archive`,
    );
  }
  if (/end of central directory|not a zip|signature/i.test(message)) {
    return new BadRequestError("file is not a .zip archive: upload a zip of the unpacked extension folder");
  }
  return new BadRequestError(`the extension archive is damaged: ${message.slice(0, 200)}`);
}

/** Opens the archive and checks its entry count from the central directory; 400s name the problem. */
async function openChecked(buffer: Buffer, limits: ArchiveLimits): Promise<ZipFile> {
  let zipfile: ZipFile;
  try {
    zipfile = await openZip(buffer);
  } catch (error) {
    throw archiveProblem(error);
  }
  if (zipfile.entryCount > limits.maxEntries) {
    zipfile.close();
    throw new BadRequestError(
      `the extension archive has ${zipfile.entryCount} entries; the limit is ${limits.maxEntries}`,
    );
  }
  return zipfile;
}

/** An entry's bytes, or the error `tooLarge` makes once more than `maxBytes` have come. */
export async function readAtMost(stream: Readable, maxBytes: number, tooLarge: () => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) {
      stream.destroy();
      throw tooLarge();
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function readLimited(stream: Readable, maxBytes: number): Promise<Buffer> {
  return readAtMost(stream, maxBytes, () => new BadRequestError(`manifest.json is over ${maxBytes} bytes`));
}

function parseManifest(bytes: Buffer): { name: string; version: string; manifestVersion: number } {
  let manifest: unknown;
  try {
    manifest = JSON.parse(bytes.toString("utf8").replace(/^\uFEFF/, ""));
  } catch (error) {
    throw new BadRequestError(`manifest.json is not valid JSON: ${(error as Error).message.slice(0, 200)}`);
  }
  const m = manifest as { name?: unknown; version?: unknown; manifest_version?: unknown } | null;
  if (typeof m !== "object" || m === null || Array.isArray(m)) {
    throw new BadRequestError("manifest.json must be a JSON object");
  }
  if (m.manifest_version !== 2 && m.manifest_version !== 3) {
    throw new BadRequestError("manifest.json must have manifest_version 2 or 3");
  }
  if (typeof m.name !== "string" || m.name.trim() === "")
    throw new BadRequestError("manifest.json has no name");
  if (typeof m.version !== "string" || m.version.trim() === "") {
    throw new BadRequestError("manifest.json has no version");
  }
  return { name: m.name.slice(0, 200), version: m.version.slice(0, 50), manifestVersion: m.manifest_version };
}

/**
 * Checks that `buffer` is a .zip of an unpacked Chrome extension within `limits`: safe relative
 * entry names, no more entries or unpacked bytes than allowed (judged from the central directory,
 * before inflating anything), and a valid `manifest.json` at the root, where Chrome looks for it.
 * Throws a 400 that names the problem.
 */
export async function inspectExtensionArchive(
  buffer: Buffer,
  limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS,
): Promise<ExtensionManifestSummary> {
  const zipfile = await openChecked(buffer, limits);
  let uncompressedBytes = 0;
  let entries = 0;
  let manifestEntry = false;
  let manifest: ReturnType<typeof parseManifest> | undefined;
  try {
    await eachEntry(zipfile, async (entry) => {
      entries++;
      uncompressedBytes += entry.uncompressedSize;
      if (uncompressedBytes > limits.maxUncompressedBytes) {
        throw new BadRequestError(
          `the extension archive unpacks to more than ${limits.maxUncompressedBytes} bytes (the limit)`,
        );
      }
      if (entry.fileName === "manifest.json") {
        manifestEntry = true;
        if (entry.uncompressedSize > MAX_MANIFEST_BYTES) {
          throw new BadRequestError(`manifest.json is over ${MAX_MANIFEST_BYTES} bytes`);
        }
        manifest = parseManifest(await readLimited(await openEntry(zipfile, entry), MAX_MANIFEST_BYTES));
      }
    });
  } catch (error) {
    throw archiveProblem(error);
  }
  if (!manifestEntry || !manifest) {
    throw new BadRequestError(
      "the extension archive has no manifest.json at its root: zip the contents of the extension folder, not the folder itself",
    );
  }
  return { ...manifest, entries, uncompressedBytes };
}

/**
 * Unpacks an extension archive into `dir` (made if missing), with the same limits and path checks
 * as `inspectExtensionArchive`, and the sizes each entry declares checked against what it really
 * inflates to. What the Proxy (and the local connect server) run before launching the browser.
 */
export async function extractExtensionArchive(
  buffer: Buffer,
  dir: string,
  limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS,
): Promise<void> {
  const root = resolve(dir);
  mkdirSync(root, { recursive: true });
  const zipfile = await openChecked(buffer, limits);
  let written = 0;
  try {
    await eachEntry(zipfile, async (entry) => {
      const target = resolve(root, entry.fileName);
      if (target !== root && !target.startsWith(root + sep)) {
        throw new BadRequestError(`archive entry ${entry.fileName} would land outside the folder`);
      }
      if (entry.fileName.endsWith("/")) {
        mkdirSync(target, { recursive: true });
        return;
      }
      written += entry.uncompressedSize;
      if (written > limits.maxUncompressedBytes) {
        throw new BadRequestError(
          `the extension archive unpacks to more than ${limits.maxUncompressedBytes} bytes`,
        );
      }
      mkdirSync(dirname(target), { recursive: true });
      // yauzl checks the inflated size against the declared one (validateEntrySizes).
      await pipeline(await openEntry(zipfile, entry), createWriteStream(target, { mode: 0o644 }));
    });
  } catch (error) {
    throw archiveProblem(error);
  }
}
