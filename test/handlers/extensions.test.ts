import { randomUUID } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { createSessionHandler } from "../../handlers/create-session";
import {
  createExtensionHandler,
  deleteExtensionHandler,
  getExtensionHandler,
} from "../../handlers/extensions";
import { createExtension, ExtensionStore } from "../../lib/extensions";
import type { HttpHandler, HttpResult } from "../../lib/http";
import { FileObjectStore, objectKeys } from "../../lib/objects";
import { projectSnapshot } from "../reliability/api";
import { closedPort } from "../compat/support";
import { apiEvent, createTestWorld, ctx, uniqueProject, type TestWorld } from "../support/fixtures";
import { buildZip, extensionZip, manifestJson, multipartBody, zipWithEntryName } from "../support/zips";

const EXTENSION_FIELDS = ["createdAt", "fileName", "id", "projectId", "updatedAt"];

/** Every file under `dir`, relative, recursively. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1))
    .sort();
}

describe("the extensions routes: /v1/extensions", () => {
  let world: TestWorld;
  let create: HttpHandler;
  let get: HttpHandler;
  let remove: HttpHandler;
  let createSession: HttpHandler;
  let objectsDir: string;
  const project = uniqueProject("ext");
  const other = uniqueProject("ext-other");
  let key: string;
  let otherKey: string;

  before(async () => {
    world = await createTestWorld();
    create = createExtensionHandler(world.runtime);
    get = getExtensionHandler(world.runtime);
    remove = deleteExtensionHandler(world.runtime);
    createSession = createSessionHandler(world.runtime);
    objectsDir = world.config.objectStore!.slice("file:".length);
    key = world.addKey(project);
    otherKey = world.addKey(other);
  });
  after(() => world.close());

  async function upload(
    apiKey: string | undefined,
    file: Buffer,
    options: { fileName?: string; fieldName?: string; contentType?: string } = {},
  ): Promise<HttpResult> {
    const { body, contentType } = await multipartBody(file, options);
    const headers: Record<string, string> = { "content-type": options.contentType ?? contentType };
    if (apiKey !== undefined) headers["x-bb-api-key"] = apiKey;
    const event = apiEvent({ method: "POST", path: "/v1/extensions", headers });
    // API Gateway hands a binary body to the function base64-encoded.
    return create({ ...event, body: body.toString("base64"), isBase64Encoded: true }, ctx());
  }

  const byId = (handler: HttpHandler, method: string, apiKey: string, id: string) =>
    handler(
      apiEvent({
        method,
        path: `/v1/extensions/${id}`,
        routePath: "/v1/extensions/{id}",
        pathParameters: { id },
        headers: { "x-bb-api-key": apiKey },
      }),
      ctx(),
    );

  const startSession = (apiKey: string, body: unknown) =>
    createSession(
      apiEvent({ method: "POST", path: "/v1/sessions", body, headers: { "x-bb-api-key": apiKey } }),
      ctx(),
    );

  it("stores an uploaded extension: 201 with Browserbase's Extension shape, the .zip in the object store, metadata in Redis", async () => {
    const zip = await extensionZip("My Ext", "2.1.0");
    const res = await upload(key, zip, { fileName: "my-ext.zip" });
    expect(res.statusCode, res.body).to.equal(201);
    const body = JSON.parse(res.body);
    expect(Object.keys(body).sort()).to.deep.equal(EXTENSION_FIELDS);
    expect(body).to.include({ fileName: "my-ext.zip", projectId: project });
    expect(body.id).to.match(/^[0-9a-f-]{36}$/);
    expect(new Date(body.createdAt).toISOString()).to.equal(body.createdAt);
    const stored = await world.runtime.objects!.get(objectKeys.extension(project, body.id));
    expect(stored?.equals(zip)).to.equal(true);
    const meta = await (await world.runtime.redis()).hgetall(`wc:{${project}}:extension:${body.id}`);
    expect(meta).to.include({ name: "My Ext", version: "2.1.0", size: String(zip.length) });

    const got = await byId(get, "GET", key, body.id);
    expect(got.statusCode).to.equal(200);
    expect(JSON.parse(got.body)).to.deep.equal(body);
  });

  it("hides one project's extension from another: 404 on retrieve and delete, and the delete changes nothing", async () => {
    const { id } = JSON.parse((await upload(key, await extensionZip())).body);
    for (const [handler, method] of [
      [get, "GET"],
      [remove, "DELETE"],
    ] as const) {
      const res = await byId(handler, method, otherKey, id);
      expect(res.statusCode, method).to.equal(404);
      expect(JSON.parse(res.body).message).to.equal(`extension ${id} not found`);
    }
    expect((await byId(get, "GET", key, id)).statusCode).to.equal(200);
    // The same 404 for an id that never existed and one that is not an id at all.
    expect((await byId(get, "GET", key, randomUUID())).statusCode).to.equal(404);
    expect((await byId(get, "GET", key, "../../etc")).statusCode).to.equal(404);
  });

  it("deletes with 204; the extension is gone from the API but its archive stays readable for sessions already using it", async () => {
    const zip = await extensionZip();
    const { id } = JSON.parse((await upload(key, zip)).body);
    const session = await startSession(key, { extensionId: id });
    expect(session.statusCode).to.equal(201);
    const res = await byId(remove, "DELETE", key, id);
    expect(res.statusCode).to.equal(204);
    expect(res.body).to.equal("");
    expect((await byId(get, "GET", key, id)).statusCode).to.equal(404);
    expect((await byId(remove, "DELETE", key, id)).statusCode).to.equal(404);
    // Retired, not removed: the Proxy can still load it for the session created before the delete.
    const retired = await world.runtime.objects!.get(objectKeys.extension(project, id));
    expect(retired?.equals(zip)).to.equal(true);
    expect(existsSync(join(objectsDir, objectKeys.extension(project, id) + ".retired"))).to.equal(true);
    // A new session can no longer name it.
    const late = await startSession(key, { extensionId: id });
    expect(late.statusCode).to.equal(400);
  });

  it("answers 401 without a valid key and stores nothing", async () => {
    const before = filesUnder(objectsDir);
    expect((await upload(undefined, await extensionZip())).statusCode).to.equal(401);
    expect((await upload("wc_" + "A".repeat(43), await extensionZip())).statusCode).to.equal(401);
    expect(filesUnder(objectsDir)).to.deep.equal(before);
  });

  describe("bad uploads get a 4xx that names the problem, and nothing is stored", () => {
    const cases: { name: string; status: number; message: RegExp; send: () => Promise<HttpResult> }[] = [
      {
        name: "a JSON body instead of multipart",
        status: 415,
        message: /must be multipart\/form-data with a "file" part/,
        send: () =>
          create(
            apiEvent({
              method: "POST",
              path: "/v1/extensions",
              body: { file: "x" },
              headers: { "x-bb-api-key": key },
            }),
            ctx(),
          ),
      },
      {
        name: "a form without a file part",
        status: 400,
        message: /no file part named "file"/,
        send: async () => upload(key, await extensionZip(), { fieldName: "archive" }),
      },
      {
        name: "an empty file",
        status: 400,
        message: /file is empty/,
        send: () => upload(key, Buffer.alloc(0)),
      },
      {
        name: "a file that is not a zip",
        status: 400,
        message: /not a \.zip archive/,
        send: () => upload(key, Buffer.from("%PDF-1.7 definitely not a zip")),
      },
      {
        name: "a zip with the manifest inside a folder",
        status: 400,
        message: /no manifest\.json at its root/,
        send: async () => upload(key, await buildZip({ "ext/manifest.json": manifestJson() })),
      },
      {
        name: "a zip with a .. entry",
        status: 400,
        message: /unsafe path/,
        send: async () => upload(key, await zipWithEntryName("../../evil.js")),
      },
      {
        name: "a zip with an absolute entry",
        status: 400,
        message: /unsafe path/,
        send: async () => upload(key, await zipWithEntryName("/tmp/evil.js")),
      },
      {
        name: "a zip bomb (80 MiB of zeros in about 80 KB)",
        status: 400,
        message: /unpacks to more than 67108864 bytes/,
        send: async () =>
          upload(
            key,
            await buildZip({ "manifest.json": manifestJson(), "z.bin": Buffer.alloc(80 * 1024 * 1024) }),
          ),
      },
      {
        name: "a file over the 4 MiB ceiling",
        status: 413,
        message: /4194304 bytes/,
        send: async () => upload(key, Buffer.concat([await extensionZip(), Buffer.alloc(4 * 1024 * 1024)])),
      },
    ];
    for (const testCase of cases) {
      it(`${testCase.name}: ${testCase.status}`, async () => {
        const redis = await world.runtime.redis();
        const before = [await projectSnapshot(redis, project), filesUnder(objectsDir)];
        const res = await testCase.send();
        expect(res.statusCode, res.body).to.equal(testCase.status);
        const body = JSON.parse(res.body);
        expect(body.statusCode).to.equal(testCase.status);
        expect(body.message).to.match(testCase.message);
        expect([await projectSnapshot(redis, project), filesUnder(objectsDir)]).to.deep.equal(before);
      });
    }
  });

  it("refuses an upload beyond the project's cap with a 409, removing the archive it had written", async () => {
    const capped = uniqueProject("ext-cap");
    const deps = {
      extensions: world.runtime.extensions,
      objects: world.runtime.objects!,
      logger: world.logger,
      now: Date.now,
      limits: { maxPerProject: 2 },
    };
    const principal = { projectId: capped, principalId: "prn_test", concurrency: 5, defaultTimeout: 300 };
    const file = {
      fieldName: "file",
      fileName: "e.zip",
      contentType: "application/zip",
      data: await extensionZip(),
    };
    await createExtension(principal, file, deps);
    await createExtension(principal, file, deps);
    const before = filesUnder(objectsDir);
    const error = await createExtension(principal, file, deps).then(
      () => expect.fail("the third extension was accepted"),
      (e: { statusCode: number; message: string }) => e,
    );
    expect(error.statusCode).to.equal(409);
    expect(error.message).to.match(/already has 2 extensions \(the limit\)/);
    expect(filesUnder(objectsDir)).to.deep.equal(before);
  });

  it("answers 503 when Redis is down and leaves no archive behind", async () => {
    const dead = await createTestWorld({ redisUrl: `redis://127.0.0.1:${await closedPort()}` });
    try {
      const deadKey = dead.addKey(project);
      const deadDir = dead.config.objectStore!.slice("file:".length);
      const { body, contentType } = await multipartBody(await extensionZip());
      const event = apiEvent({
        method: "POST",
        path: "/v1/extensions",
        headers: { "content-type": contentType, "x-bb-api-key": deadKey },
      });
      const res = await createExtensionHandler(dead.runtime)(
        { ...event, body: body.toString("base64"), isBase64Encoded: true },
        ctx(),
      );
      expect(res.statusCode).to.equal(503);
      expect(filesUnder(deadDir)).to.deep.equal([]);
    } finally {
      await dead.close();
    }
  });

  it("will not start without an object store, naming OBJECT_STORE", () => {
    expect(() => createExtensionHandler({ ...world.runtime, objects: undefined })).to.throw(/OBJECT_STORE/);
  });

  describe("sessions naming an extension", () => {
    let extensionId: string;
    let foreignId: string;
    before(async () => {
      extensionId = JSON.parse((await upload(key, await extensionZip())).body).id;
      foreignId = JSON.parse((await upload(otherKey, await extensionZip())).body).id;
    });

    it("carry the extensionId of their own project's extension, given at the top or in browserSettings", async () => {
      for (const body of [{ extensionId }, { browserSettings: { extensionId } }]) {
        const res = await startSession(key, body);
        expect(res.statusCode, res.body).to.equal(201);
        const record = await world.runtime.store.get(project, JSON.parse(res.body).id);
        expect(record?.extensionId).to.equal(extensionId);
      }
    });

    it("refuse another project's extension, an unknown one and a non-id with a 400 that says so", async () => {
      for (const id of [foreignId, randomUUID(), "stagehand-preloaded"]) {
        const res = await startSession(key, { extensionId: id });
        expect(res.statusCode, id).to.equal(400);
        expect(JSON.parse(res.body).message).to.match(
          /is not an extension of this project: upload it with POST \/v1\/extensions/,
        );
      }
    });

    it("refuse two different extension ids", async () => {
      const res = await startSession(key, { extensionId, browserSettings: { extensionId: foreignId } });
      expect(res.statusCode).to.equal(400);
      expect(JSON.parse(res.body).message).to.match(/name different extensions/);
    });
  });

  it("keeps extension metadata in the project's hash-tagged keys", async () => {
    const store = new ExtensionStore(() => world.runtime.redis());
    const { id } = JSON.parse((await upload(key, await extensionZip())).body);
    expect((await store.get(project, id))?.objectKey).to.equal(`extensions/${project}/${id}.zip`);
    const index = await (await world.runtime.redis()).zscore(`wc:{${project}}:extensions`, id);
    expect(Number(index)).to.be.greaterThan(0);
    expect(new FileObjectStore(objectsDir).root).to.equal(objectsDir);
  });
});
