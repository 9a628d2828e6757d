import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { extractExtensionArchive, inspectExtensionArchive } from "../../lib/archive";
import { buildZip, extensionZip, manifestJson, zipWithEntryName } from "../support/zips";

async function problemOf(promise: Promise<unknown>): Promise<{ statusCode: number; message: string }> {
  try {
    await promise;
  } catch (error) {
    return error as { statusCode: number; message: string };
  }
  throw new Error("expected the archive to be refused");
}

describe("lib/archive: extension archives", () => {
  it("reads name, version, entry count and unpacked size of a valid extension", async () => {
    const summary = await inspectExtensionArchive(await extensionZip("Runtime", "1.3.0"));
    expect(summary).to.deep.include({ name: "Runtime", version: "1.3.0", manifestVersion: 3, entries: 2 });
    expect(summary.uncompressedBytes).to.be.greaterThan(40);
  });

  it("refuses what is not a zip, with a 400 that says so", async () => {
    const problem = await problemOf(inspectExtensionArchive(Buffer.from("just some text, not a zip at all")));
    expect(problem.statusCode).to.equal(400);
    expect(problem.message).to.match(/not a \.zip archive/);
  });

  it("refuses an archive without manifest.json at its root, saying how to zip it", async () => {
    const nested = await buildZip({ "my-ext/manifest.json": manifestJson(), "my-ext/a.js": "1" });
    const problem = await problemOf(inspectExtensionArchive(nested));
    expect(problem.statusCode).to.equal(400);
    expect(problem.message).to.match(/no manifest\.json at its root.*contents of the extension folder/);
  });

  it("refuses a manifest that is not JSON or lacks its required fields", async () => {
    const cases: [string, RegExp][] = [
      ["{not json", /manifest\.json is not valid JSON/],
      ["[1,2]", /must be a JSON object/],
      [JSON.stringify({ manifest_version: 1, name: "a", version: "1" }), /manifest_version 2 or 3/],
      [JSON.stringify({ manifest_version: 3, version: "1" }), /has no name/],
      [JSON.stringify({ manifest_version: 3, name: "a" }), /has no version/],
    ];
    for (const [manifest, expected] of cases) {
      const problem = await problemOf(inspectExtensionArchive(await buildZip({ "manifest.json": manifest })));
      expect(problem.statusCode, manifest).to.equal(400);
      expect(problem.message, manifest).to.match(expected);
    }
  });

  it("refuses entries with .. or absolute paths, before anything is unpacked", async () => {
    for (const name of ["../evil.js", "a/../../evil.js", "/etc/evil.js"]) {
      const zip = await zipWithEntryName(name);
      const problem = await problemOf(inspectExtensionArchive(zip));
      expect(problem.statusCode, name).to.equal(400);
      expect(problem.message, name).to.match(/unsafe path/);
      const dir = mkdtempSync(join(tmpdir(), "wc-unzip-"));
      try {
        const refused = await problemOf(extractExtensionArchive(zip, join(dir, "ext")));
        expect(refused.message, name).to.match(/unsafe path/);
        expect(existsSync(join(dir, "evil.js")), name).to.equal(false);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  it("refuses a zip bomb from its central directory: too many bytes unpacked or too many entries", async () => {
    // 20 MiB of zeros deflate to about 20 KB.
    const bomb = await buildZip({
      "manifest.json": manifestJson(),
      "zeros.bin": Buffer.alloc(20 * 1024 * 1024),
    });
    expect(bomb.length).to.be.below(100 * 1024);
    const limits = { maxEntries: 100, maxUncompressedBytes: 10 * 1024 * 1024 };
    const tooBig = await problemOf(inspectExtensionArchive(bomb, limits));
    expect(tooBig.statusCode).to.equal(400);
    expect(tooBig.message).to.match(/unpacks to more than 10485760 bytes/);

    const many: Record<string, string> = { "manifest.json": manifestJson() };
    for (let i = 0; i < 150; i++) many[`f${i}.txt`] = "x";
    const tooMany = await problemOf(inspectExtensionArchive(await buildZip(many), limits));
    expect(tooMany.message).to.match(/has 151 entries; the limit is 100/);
  });

  it("unpacks a valid archive with its folders and exact bytes", async () => {
    const script = Buffer.from("export const answer = 42;\n");
    const zip = await buildZip({ "manifest.json": manifestJson(), "lib/": "", "lib/main.js": script });
    const dir = mkdtempSync(join(tmpdir(), "wc-unzip-"));
    try {
      await extractExtensionArchive(zip, join(dir, "ext"));
      expect(readdirSync(join(dir, "ext")).sort()).to.deep.equal(["lib", "manifest.json"]);
      expect(readFileSync(join(dir, "ext", "lib", "main.js")).equals(script)).to.equal(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses, while unpacking, an entry that inflates to more than it declares", async () => {
    const zip = await buildZip({ "manifest.json": manifestJson(), "big.bin": Buffer.alloc(4096, 7) });
    // Shrink big.bin's declared size in the central directory (the size yauzl trusts up front).
    const name = Buffer.from("big.bin");
    const central = zip.lastIndexOf(name) - 46;
    expect(zip.readUInt32LE(central)).to.equal(0x02014b50);
    zip.writeUInt32LE(16, central + 24);
    const dir = mkdtempSync(join(tmpdir(), "wc-unzip-"));
    try {
      const problem = await problemOf(extractExtensionArchive(zip, join(dir, "ext")));
      expect(problem.statusCode).to.equal(400);
      expect(problem.message).to.match(/damaged|too many bytes|size/i);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
