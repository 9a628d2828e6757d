import { expect } from "chai";
import { createSessionHandler } from "../../handlers/create-session";
import {
  sessionDownloadsHandler,
  sessionLogsHandler,
  uploadSessionFileHandler,
} from "../../handlers/session-files";
import { updateSessionHandler } from "../../handlers/update-session";
import type { HttpHandler, HttpResult } from "../../lib/http";
import {
  boundedLogEntry,
  SESSION_FILE_LIMITS,
  sessionFileKeys,
  sessionFileRedisKeys,
} from "../../lib/session-files";
import { apiEvent, createTestWorld, ctx, uniqueProject, type TestWorld } from "../support/fixtures";
import { multipartBody, unzipEntries } from "../support/zips";

describe("session files: uploads, downloads and logs", () => {
  let world: TestWorld;
  let upload: HttpHandler;
  let downloads: HttpHandler;
  let logs: HttpHandler;
  const project = uniqueProject("files");
  const other = uniqueProject("files-other");
  let key: string;
  let otherKey: string;

  before(async () => {
    world = await createTestWorld();
    upload = uploadSessionFileHandler(world.runtime);
    downloads = sessionDownloadsHandler(world.runtime);
    logs = sessionLogsHandler(world.runtime);
    key = world.addKey(project, { concurrency: 1000 });
    otherKey = world.addKey(other);
  });
  after(() => world.close());

  const createSession = async (apiKey = key) => {
    const res = await createSessionHandler(world.runtime)(
      apiEvent({ method: "POST", path: "/v1/sessions", body: {}, headers: { "x-bb-api-key": apiKey } }),
      ctx(),
    );
    expect(res.statusCode, res.body).to.equal(201);
    return JSON.parse(res.body).id as string;
  };

  const send = async (
    id: string,
    file: Buffer,
    options: { apiKey?: string; fileName?: string; fieldName?: string; contentType?: string } = {},
  ): Promise<HttpResult> => {
    const { body, contentType } = await multipartBody(file, options);
    const event = apiEvent({
      method: "POST",
      path: `/v1/sessions/${id}/uploads`,
      pathParameters: { id },
      headers: { "content-type": options.contentType ?? contentType, "x-bb-api-key": options.apiKey ?? key },
    });
    return upload({ ...event, body: body.toString("base64"), isBase64Encoded: true }, ctx());
  };

  const byId = (handler: HttpHandler, id: string, apiKey = key, suffix = "downloads") =>
    handler(
      apiEvent({
        method: "GET",
        path: `/v1/sessions/${id}/${suffix}`,
        pathParameters: { id },
        headers: { "x-bb-api-key": apiKey },
      }),
      ctx(),
    );

  const uploadsOf = async (id: string, projectId = project) =>
    (await world.runtime.sessionFiles!.files("uploads", projectId, id)).size;

  describe("POST /v1/sessions/{id}/uploads", () => {
    it("stores the file under the session and answers 200 {message}", async () => {
      const id = await createSession();
      const res = await send(id, Buffer.from("name,total\nada,42\n"), { fileName: "report.csv" });
      expect(res.statusCode, res.body).to.equal(200);
      expect(JSON.parse(res.body).message).to.include("/tmp/.uploads/report.csv");
      const stored = await world.runtime.objects!.get(sessionFileKeys.upload(project, id, "report.csv"));
      expect(stored!.toString()).to.equal("name,total\nada,42\n");
      expect(await world.runtime.sessionFiles!.files("uploads", project, id)).to.deep.equal(
        new Map([["report.csv", 18]]),
      );
      // The list expires with the session's record.
      const redis = await world.runtime.redis();
      const [listTtl, recordTtl] = await Promise.all([
        redis.pttl(sessionFileRedisKeys.uploads(project, id)),
        redis.pttl(`wc:{${project}}:session:${id}`),
      ]);
      expect(Math.abs(listTtl - recordTtl)).to.be.below(60_000);
    });

    it("refuses each bad upload with a clear 4xx and stores nothing", async () => {
      const id = await createSession();
      const tooBig = await send(id, Buffer.alloc(SESSION_FILE_LIMITS.uploadBytes + 1), {
        fileName: "big.bin",
      });
      expect(tooBig.statusCode).to.equal(413);
      expect(JSON.parse(tooBig.body).message).to.match(/4194304 bytes/);
      const noFile = await send(id, Buffer.from("x"), { fieldName: "document" });
      expect(noFile.statusCode).to.equal(400);
      expect(JSON.parse(noFile.body).message).to.include('"file"');
      const notMultipart = await send(id, Buffer.from("x"), { contentType: "application/json" });
      expect(notMultipart.statusCode).to.equal(415);
      const foreign = await send(id, Buffer.from("x"), { apiKey: otherKey, fileName: "x.txt" });
      expect(foreign.statusCode).to.equal(404);
      expect(await uploadsOf(id)).to.equal(0);

      await updateSessionHandler(world.runtime)(
        apiEvent({
          method: "POST",
          path: `/v1/sessions/${id}`,
          pathParameters: { id },
          body: { status: "REQUEST_RELEASE" },
          headers: { "x-bb-api-key": key },
        }),
        ctx(),
      );
      const ended = await send(id, Buffer.from("late"), { fileName: "late.txt" });
      expect(ended.statusCode).to.equal(400);
      expect(JSON.parse(ended.body).message).to.match(/has ended \(COMPLETED\)/);
      expect(await uploadsOf(id)).to.equal(0);
      expect(await world.runtime.objects!.get(sessionFileKeys.upload(project, id, "late.txt"))).to.equal(
        undefined,
      );
    });

    it("keeps a session to its cap of uploaded files, and a refused file is not left in the store", async () => {
      const id = await createSession();
      for (let i = 0; i < SESSION_FILE_LIMITS.uploadsPerSession; i++) {
        expect((await send(id, Buffer.from(String(i)), { fileName: `f${i}.txt` })).statusCode).to.equal(200);
      }
      const over = await send(id, Buffer.from("one more"), { fileName: "over.txt" });
      expect(over.statusCode).to.equal(409);
      expect(await world.runtime.objects!.get(sessionFileKeys.upload(project, id, "over.txt"))).to.equal(
        undefined,
      );
      // Replacing a file of the same name is not a new one.
      expect((await send(id, Buffer.from("again"), { fileName: "f0.txt" })).statusCode).to.equal(200);
    });
  });

  describe("GET /v1/sessions/{id}/downloads", () => {
    it("answers an empty application/zip body while there are no downloads, as Browserbase does", async () => {
      const id = await createSession();
      const res = await byId(downloads, id);
      expect(res.statusCode).to.equal(200);
      expect(res.headers["content-type"]).to.equal("application/zip");
      expect(res.body).to.equal("");
      expect((await byId(downloads, id, otherKey)).statusCode).to.equal(404);
    });

    it("zips what the browser's writer stored under the session, with the bytes it stored", async () => {
      const id = await createSession();
      const record = (await world.runtime.store.get(project, id))!;
      const files = world.runtime.sessionFiles!;
      const pdf = Buffer.from("%PDF-1.4 fake");
      for (const [name, data] of [
        ["invoice.pdf", pdf],
        ["data (2).csv", Buffer.from("a,b\n")],
      ] as const) {
        await world.runtime.objects!.put(
          sessionFileKeys.download(project, id, name),
          data,
          "application/octet-stream",
        );
        await files.addFile("downloads", record, name, data.length, 10, record.expiresAt + 60_000);
      }
      const res = await byId(downloads, id);
      expect(res.statusCode).to.equal(200);
      expect(res.isBase64Encoded).to.equal(true);
      const entries = await unzipEntries(Buffer.from(res.body, "base64"));
      expect([...entries.keys()].sort()).to.deep.equal(["data (2).csv", "invoice.pdf"]);
      expect(entries.get("invoice.pdf")!.equals(pdf)).to.equal(true);
    });
  });

  describe("GET /v1/sessions/{id}/logs", () => {
    it("lists the entries written for the session, oldest first; another project's session is a 404", async () => {
      const id = await createSession();
      expect(JSON.parse((await byId(logs, id, key, "logs")).body)).to.deep.equal([]);
      const record = (await world.runtime.store.get(project, id))!;
      const entry = (method: string, n: number) =>
        boundedLogEntry({
          method,
          pageId: 1,
          sessionId: "S1",
          request: { params: { n }, rawBody: "", timestamp: n },
          response: { result: {}, rawBody: "", timestamp: n + 1 },
          timestamp: n,
        });
      await world.runtime.sessionFiles!.appendLogs(
        project,
        id,
        [entry("Page.navigate", 1), entry("Runtime.evaluate", 2)],
        record.expiresAt + 60_000,
      );
      const listed = JSON.parse((await byId(logs, id, key, "logs")).body);
      expect(listed.map((e: { method: string }) => e.method)).to.deep.equal([
        "Page.navigate",
        "Runtime.evaluate",
      ]);
      expect(listed[0].request).to.deep.equal({ params: { n: 1 }, rawBody: '{"n":1}', timestamp: 1 });
      expect((await byId(logs, id, otherKey, "logs")).statusCode).to.equal(404);
    });

    it("keeps the newest entries only, and cuts page content in a logged call", async () => {
      const id = await createSession();
      const record = (await world.runtime.store.get(project, id))!;
      const batch = Array.from({ length: SESSION_FILE_LIMITS.logEntries + 50 }, (_, i) =>
        boundedLogEntry({ method: `M${i}`, pageId: 0, sessionId: "" }),
      );
      await world.runtime.sessionFiles!.appendLogs(project, id, batch, record.expiresAt + 60_000);
      const listed = JSON.parse((await byId(logs, id, key, "logs")).body) as { method: string }[];
      expect(listed).to.have.length(SESSION_FILE_LIMITS.logEntries);
      expect(listed[0].method).to.equal("M50");

      const screenshot = JSON.parse(
        boundedLogEntry({
          method: "Page.captureScreenshot",
          pageId: 1,
          sessionId: "S",
          response: { result: { data: "A".repeat(200_000) }, rawBody: "", timestamp: 1 },
        }),
      );
      expect(screenshot.response.result.data).to.have.length.below(SESSION_FILE_LIMITS.logStringBytes + 60);
      expect(screenshot.response.result.data).to.match(/…\[cut: 200000 characters\]$/);
    });
  });
});
