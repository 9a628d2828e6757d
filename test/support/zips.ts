import { fromBuffer as yauzlFromBuffer } from "yauzl";
import { ZipFile } from "yazl";

/** A .zip holding `entries` (path to content), deflated, as a Buffer. */
export function buildZip(entries: Record<string, string | Buffer>): Promise<Buffer> {
  const zip = new ZipFile();
  for (const [path, content] of Object.entries(entries)) {
    if (path.endsWith("/")) zip.addEmptyDirectory(path);
    else zip.addBuffer(Buffer.isBuffer(content) ? content : Buffer.from(content), path);
  }
  zip.end();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    zip.outputStream.on("data", (chunk: Buffer) => chunks.push(chunk));
    zip.outputStream.on("end", () => resolve(Buffer.concat(chunks)));
    zip.outputStream.on("error", reject);
  });
}

/** A minimal valid Manifest V3 extension. */
export function manifestJson(name = "Test Extension", version = "1.0.0"): string {
  return JSON.stringify({ manifest_version: 3, name, version });
}

/** A valid extension .zip: manifest.json at the root plus a small script. */
export function extensionZip(name = "Test Extension", version = "1.0.0"): Promise<Buffer> {
  return buildZip({ "manifest.json": manifestJson(name, version), "content.js": "console.log('hi');\n" });
}

/**
 * A zip whose entry names include `unsafeName` (e.g. `../evil.js` or `/etc/x`), which zip writers
 * refuse to produce: written under a placeholder of the same length, then renamed in place (the
 * name is stored uncompressed, in the local header and the central directory, outside every CRC).
 */
export async function zipWithEntryName(unsafeName: string): Promise<Buffer> {
  const placeholder = "x".repeat(unsafeName.length);
  const zip = await buildZip({ "manifest.json": manifestJson(), [placeholder]: "payload" });
  const from = Buffer.from(placeholder);
  const to = Buffer.from(unsafeName);
  let at = zip.indexOf(from);
  while (at !== -1) {
    to.copy(zip, at);
    at = zip.indexOf(from, at + to.length);
  }
  return zip;
}

/** A multipart/form-data body with one file part, as the Browserbase SDK sends it. */
export async function multipartBody(
  file: Buffer,
  options: { fieldName?: string; fileName?: string; extraFields?: Record<string, string> } = {},
): Promise<{ body: Buffer; contentType: string }> {
  const form = new FormData();
  for (const [name, value] of Object.entries(options.extraFields ?? {})) form.append(name, value);
  form.append(
    options.fieldName ?? "file",
    new Blob([file], { type: "application/zip" }),
    options.fileName ?? "ext.zip",
  );
  const request = new Request("http://localhost/", { method: "POST", body: form });
  return {
    body: Buffer.from(await request.arrayBuffer()),
    contentType: request.headers.get("content-type")!,
  };
}

/** The entries of a zip, by name, with their bytes. */
export function unzipEntries(data: Buffer): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    yauzlFromBuffer(data, { lazyEntries: true }, (error, zip) => {
      if (error || !zip) return reject(error);
      const out = new Map<string, Buffer>();
      zip.on("entry", (entry: { fileName: string }) => {
        zip.openReadStream(entry as never, (err, stream) => {
          if (err || !stream) return reject(err);
          const chunks: Buffer[] = [];
          stream.on("data", (chunk: Buffer) => chunks.push(chunk));
          stream.on("end", () => {
            out.set(entry.fileName, Buffer.concat(chunks));
            zip.readEntry();
          });
        });
      });
      zip.on("end", () => resolve(out));
      zip.readEntry();
    });
  });
}
