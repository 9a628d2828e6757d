import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { FileObjectStore, objectKeys, objectStoreFrom, RETIRED_TAG, S3ObjectStore } from "../../lib/objects";

async function statusOf(promise: Promise<unknown>): Promise<number | string> {
  try {
    await promise;
    return "fulfilled";
  } catch (error) {
    return (error as { statusCode?: number }).statusCode ?? (error as Error).message;
  }
}

describe("lib/objects: the object store", () => {
  it("names extension archives per project: extensions/<project>/<id>.zip", () => {
    expect(objectKeys.extension("acme", "e1")).to.equal("extensions/acme/e1.zip");
  });

  it("parses OBJECT_STORE and names the variable when it is wrong", () => {
    expect(objectStoreFrom("s3://wc-objects-1")).to.be.instanceOf(S3ObjectStore);
    expect(objectStoreFrom("file:/tmp/x")).to.be.instanceOf(FileObjectStore);
    expect(() => objectStoreFrom("s3://Bad_Bucket")).to.throw(/OBJECT_STORE names an invalid S3 bucket/);
    expect(() => objectStoreFrom("ftp://x")).to.throw(
      /OBJECT_STORE must be s3:\/\/<bucket> or file:<folder>/,
    );
  });

  describe("files (the local stack)", () => {
    let root: string;
    let store: FileObjectStore;
    beforeEach(() => {
      root = mkdtempSync(join(tmpdir(), "wc-objects-"));
      store = new FileObjectStore(root);
    });
    afterEach(() => rmSync(root, { recursive: true, force: true }));

    it("stores, reads back and deletes an object; a missing one reads as undefined", async () => {
      await store.put("extensions/p/a.zip", Buffer.from("zip bytes"), "application/zip");
      expect((await store.get("extensions/p/a.zip"))?.toString()).to.equal("zip bytes");
      expect(await store.get("extensions/p/missing.zip")).to.equal(undefined);
      await store.delete("extensions/p/a.zip");
      expect(await store.get("extensions/p/a.zip")).to.equal(undefined);
      // No partial files are left behind by the atomic write.
      expect(readdirSync(join(root, "extensions", "p"))).to.deep.equal([]);
    });

    it("refuses keys that would leave its folder", async () => {
      for (const key of ["../x", "extensions/../../x", "/etc/passwd", "a//b", "a/./b"]) {
        expect(await statusOf(store.put(key, Buffer.from("x"), "text/plain")), key).to.match(
          /invalid object key/,
        );
        expect(await statusOf(store.get(key)), key).to.match(/invalid object key/);
      }
    });

    it("keeps a retired object readable until the sweep finds it older than the retention", async () => {
      await store.put("extensions/p/old.zip", Buffer.from("old"), "application/zip");
      await store.put("extensions/p/new.zip", Buffer.from("new"), "application/zip");
      await store.retire("extensions/p/old.zip");
      await store.retire("extensions/p/new.zip");
      expect((await store.get("extensions/p/old.zip"))?.toString()).to.equal("old");
      const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000);
      utimesSync(join(root, "extensions", "p", "old.zip.retired"), twoDaysAgo, twoDaysAgo);
      expect(store.sweepRetired()).to.equal(1);
      expect(await store.get("extensions/p/old.zip")).to.equal(undefined);
      expect((await store.get("extensions/p/new.zip"))?.toString()).to.equal("new");
    });

    it("is a 503 when the folder cannot be written", async () => {
      // Its root is a regular file, so no folder can be made under it.
      writeFileSync(join(root, "plain-file"), "x");
      const blocked = new FileObjectStore(join(root, "plain-file"));
      expect(await statusOf(blocked.put("extensions/p/a.zip", Buffer.from("x"), "application/zip"))).to.equal(
        503,
      );
    });
  });

  describe("S3 (deployed), against a fake S3 endpoint on loopback", () => {
    let server: Server;
    const objects = new Map<string, { body: Buffer; type?: string; tags?: string }>();
    const seen: string[] = [];
    let failing = false;
    let store: S3ObjectStore;

    const read = (req: IncomingMessage) =>
      new Promise<Buffer>((resolve) => {
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => resolve(Buffer.concat(chunks)));
      });

    before(async () => {
      process.env.AWS_ACCESS_KEY_ID ??= "test";
      process.env.AWS_SECRET_ACCESS_KEY ??= "test";
      server = createServer(async (req, res) => {
        const url = new URL(req.url!, "http://s3.local");
        const body = await read(req);
        seen.push(`${req.method} ${url.pathname}${url.searchParams.has("tagging") ? "?tagging" : ""}`);
        if (failing) {
          res.writeHead(500, { "content-type": "application/xml" });
          res.end("<Error><Code>InternalError</Code><Message>boom</Message></Error>");
          return;
        }
        const key = decodeURIComponent(url.pathname.replace(/^\/wc-bucket\//, ""));
        if (req.method === "PUT" && url.searchParams.has("tagging")) {
          const existing = objects.get(key);
          if (!existing) {
            res.writeHead(404, { "content-type": "application/xml" });
            res.end("<Error><Code>NoSuchKey</Code><Message>none</Message></Error>");
            return;
          }
          existing.tags = body.toString();
          res.writeHead(200).end();
        } else if (req.method === "PUT") {
          objects.set(key, { body, type: req.headers["content-type"] });
          res.writeHead(200, { etag: '"1"' }).end();
        } else if (req.method === "GET") {
          const found = objects.get(key);
          if (!found) {
            res.writeHead(404, { "content-type": "application/xml" });
            res.end("<Error><Code>NoSuchKey</Code><Message>none</Message></Error>");
            return;
          }
          res.writeHead(200, { "content-length": found.body.length }).end(found.body);
        } else if (req.method === "DELETE") {
          objects.delete(key);
          res.writeHead(204).end();
        } else res.writeHead(405).end();
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
      const { port } = server.address() as AddressInfo;
      store = new S3ObjectStore("wc-bucket", { region: "us-west-2", endpoint: `http://127.0.0.1:${port}` });
    });
    after(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it("puts, gets, tags as retired and deletes through the real S3 client", async () => {
      await store.put("extensions/p/e.zip", Buffer.from("PKzip"), "application/zip");
      expect(objects.get("extensions/p/e.zip")?.type).to.equal("application/zip");
      expect((await store.get("extensions/p/e.zip"))?.toString()).to.equal("PKzip");
      expect(await store.get("extensions/p/none.zip")).to.equal(undefined);
      await store.retire("extensions/p/e.zip");
      expect(objects.get("extensions/p/e.zip")?.tags).to.include(`<Key>${RETIRED_TAG.key}</Key>`);
      await store.retire("extensions/p/none.zip"); // already gone: nothing to do
      await store.delete("extensions/p/e.zip");
      expect(objects.has("extensions/p/e.zip")).to.equal(false);
      expect(seen).to.include("PUT /wc-bucket/extensions/p/e.zip?tagging");
    });

    it("turns an S3 failure into a 503", async () => {
      failing = true;
      try {
        const before = seen.length;
        expect(await statusOf(store.get("extensions/p/e.zip"))).to.equal(503);
        // One retry at most (maxAttempts 2), so a dead S3 fails a request quickly.
        expect(seen.length - before).to.be.within(1, 2);
      } finally {
        failing = false;
      }
    });
  });
});
