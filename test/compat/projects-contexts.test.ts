import { createPrivateKey, createPublicKey } from "node:crypto";
import { request as httpRequest } from "node:http";
import Browserbase from "@browserbasehq/sdk";
import { expect } from "chai";
import { generateApiKey } from "../../lib/apikeys";
import {
  CONTEXT_CIPHER_ALGORITHM,
  decryptContextArchive,
  encryptContextArchive,
  MAX_CONTEXT_ARCHIVE_BYTES,
  openPrivateKey,
} from "../../lib/contexts";
import { objectKeys } from "../../lib/objects";
import { usageMonth } from "../../lib/store";
import { parseTokenKeySet } from "../../lib/tokens";
import { addApiKeyEntry, readSecrets, upsertProject } from "../../local/secrets-file";
import { buildZip } from "../support/zips";
import { rejectionOf, startCompatStack, type CompatProject, type CompatStack } from "./support";

/** PUTs a body to a URL as a client of a presigned URL would. */
async function put(url: string, body: Buffer): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method: "PUT", body });
  return { status: res.status, text: await res.text() };
}

describe("compat: projects and contexts through @browserbasehq/sdk", function () {
  this.timeout(30_000);
  let world: CompatStack;
  let main: CompatProject;
  let other: CompatProject;
  let bb: Browserbase;
  let otherBb: Browserbase;

  const client = (project: CompatProject) =>
    new Browserbase({ apiKey: project.apiKey, baseURL: world.url, maxRetries: 0 });

  before(async () => {
    world = await startCompatStack({ projects: [{ concurrency: 3 }, {}] });
    [main, other] = world.projects;
    bb = client(main);
    otherBb = client(other);
  });
  after(() => world?.stop());

  const objects = () => world.stack.runtime.objects!;
  const privateKeyOf = async (contextId: string) => {
    const record = (await world.stack.runtime.contexts.get(main.projectId, contextId))!;
    const tokenKeys = parseTokenKeySet(JSON.stringify(readSecrets(world.stack.secretsFile).tokenKeys));
    return openPrivateKey(tokenKeys, record.privateKeyJwe);
  };

  describe("projects", () => {
    it("lists and retrieves the key's own project with its limit and default timeout", async () => {
      const list = await bb.projects.list();
      expect(list).to.have.length(1);
      const [project] = list;
      expect(project).to.include({
        id: main.projectId,
        concurrency: 3,
        defaultTimeout: 300,
        ownerId: "self-hosted",
      });
      expect(project.name).to.be.a("string");
      expect(Number.isNaN(Date.parse(project.createdAt))).to.equal(false);
      expect(Number.isNaN(Date.parse(project.updatedAt))).to.equal(false);
      expect(await bb.projects.retrieve(main.projectId)).to.deep.equal(project);
    });

    it("answers 404 for another project's id on retrieve and usage", async () => {
      for (const call of [
        () => bb.projects.retrieve(other.projectId),
        () => bb.projects.usage(other.projectId),
      ]) {
        const error = await rejectionOf(call());
        expect(error).to.be.instanceOf(Browserbase.NotFoundError);
      }
      expect((await otherBb.projects.list()).map((p) => p.id)).to.deep.equal([other.projectId]);
    });

    it("reports usage: the minutes of the sessions that ended this month", async () => {
      const before = await bb.projects.usage(main.projectId);
      expect(before).to.have.keys("browserMinutes", "proxyBytes");
      const session = await bb.sessions.create();
      await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });
      const after = await bb.projects.usage(main.projectId);
      expect(after.browserMinutes).to.equal(before.browserMinutes + 1);
      expect(after.proxyBytes).to.equal(before.proxyBytes);
      // Another month is a query parameter away; a malformed one is a 400 that names it.
      const res = await fetch(`${world.url}/v1/projects/${main.projectId}/usage?month=1999-01`, {
        headers: { "X-BB-API-Key": main.apiKey },
      });
      expect(await res.json()).to.deep.equal({ browserMinutes: 0, proxyBytes: 0 });
      const bad = await fetch(`${world.url}/v1/projects/${main.projectId}/usage?month=2026-13`, {
        headers: { "X-BB-API-Key": main.apiKey },
      });
      expect(bad.status).to.equal(400);
      expect(((await bad.json()) as { message: string }).message).to.match(/month must be YYYY-MM/);
      expect(usageMonth(Date.now())).to.match(/^\d{4}-\d{2}$/);
    });

    it("shares the project's limit between its keys, and a new key without a limit does not raise it", async () => {
      const project = `${main.projectId}-shared`;
      const file = world.stack.secretsFile;
      const first = generateApiKey(project);
      const second = generateApiKey(project);
      addApiKeyEntry(file, first.entry);
      upsertProject(file, project, { concurrency: 2 });
      addApiKeyEntry(file, second.entry); // minted later, without --concurrency
      world.stack.runtime.secrets.invalidate(world.stack.runtime.config.apiKeysSecretRef);
      const a = new Browserbase({ apiKey: first.key, baseURL: world.url, maxRetries: 0 });
      const b = new Browserbase({ apiKey: second.key, baseURL: world.url, maxRetries: 0 });
      await a.sessions.create();
      await b.sessions.create();
      const refused = await rejectionOf(b.sessions.create());
      expect(refused).to.be.instanceOf(Browserbase.RateLimitError);
      expect(refused.message).to.include("limit of 2");
      expect((await b.projects.retrieve(project)).concurrency).to.equal(2);
    });
  });

  describe("contexts", () => {
    it("creates a context with an upload URL, an RSA public key and Browserbase's cipher parameters", async () => {
      const made = await bb.contexts.create({ projectId: main.projectId });
      expect(made.id).to.match(/^[0-9a-f-]{36}$/);
      expect(made.publicKey).to.match(/^-----BEGIN PUBLIC KEY-----/);
      expect(made).to.include({ cipherAlgorithm: CONTEXT_CIPHER_ALGORITHM, initializationVectorSize: 16 });
      expect(made.uploadUrl).to.match(new RegExp(`^${world.url}/v1/contexts/${made.id}/archive\\?token=`));
      expect(JSON.stringify(made)).to.not.match(/PRIVATE KEY/);
      const got = await bb.contexts.retrieve(made.id);
      expect(got).to.include({ id: made.id, projectId: main.projectId });
      expect(got.createdAt).to.equal(got.updatedAt);
      expect(JSON.stringify(got)).to.not.match(/KEY/);
      // The private key is stored sealed, never in clear.
      const stored = await (
        await world.stack.runtime.redis()
      ).hgetall(`wc:{${main.projectId}}:context:${made.id}`);
      expect(JSON.stringify(stored)).to.not.match(/PRIVATE KEY/);
      // ...and it opens to the private half of the returned public key.
      const privateKey = createPrivateKey(await privateKeyOf(made.id));
      expect(privateKey.asymmetricKeyType).to.equal("rsa");
      expect(createPublicKey(privateKey).export({ type: "spki", format: "pem" })).to.equal(made.publicKey);
    });

    it("takes an encrypted archive at the upload URL, which only the private key opens", async () => {
      const made = await bb.contexts.create();
      const zip = await buildZip({ "Default/Preferences": '{"profile":{}}' });
      const archive = encryptContextArchive(made.publicKey, zip);
      expect(await put(made.uploadUrl, archive)).to.deep.equal({ status: 200, text: "" });
      const stored = await objects().get(objectKeys.context(main.projectId, made.id));
      expect(stored!.equals(archive)).to.equal(true);
      expect(decryptContextArchive(await privateKeyOf(made.id), stored!).equals(zip)).to.equal(true);
      const got = await bb.contexts.retrieve(made.id);
      expect(Date.parse(got.updatedAt)).to.be.greaterThan(Date.parse(got.createdAt) - 1);

      // PUT gives a fresh URL for the same key pair.
      const renewed = await bb.contexts.update(made.id);
      expect(renewed.publicKey).to.equal(made.publicKey);
      expect(renewed.uploadUrl).to.not.equal(made.uploadUrl);
    });

    it("refuses a bad upload with a 4xx and keeps the archive it had", async () => {
      const made = await bb.contexts.create();
      const good = encryptContextArchive(made.publicKey, await buildZip({ "Local State": "{}" }));
      expect((await put(made.uploadUrl, good)).status).to.equal(200);
      const key = objectKeys.context(main.projectId, made.id);

      const notArchive = await put(made.uploadUrl, Buffer.from("just a zip, not encrypted"));
      expect(notArchive.status).to.equal(400);
      expect(notArchive.text).to.match(/not a context archive/);

      const tooBig = await put(made.uploadUrl, Buffer.alloc(MAX_CONTEXT_ARCHIVE_BYTES + 1));
      expect(tooBig.status).to.equal(413);

      const otherContext = await bb.contexts.create();
      const wrongUrl = made.uploadUrl.replace(made.id, otherContext.id);
      expect((await put(wrongUrl, good)).status).to.equal(403);
      const tampered = made.uploadUrl.slice(0, -4) + (made.uploadUrl.endsWith("AAAA") ? "BBBB" : "AAAA");
      expect((await put(tampered, good)).status).to.equal(403);
      expect(await objects().get(objectKeys.context(main.projectId, otherContext.id))).to.equal(undefined);

      // A client that goes away half-way: the half never becomes the context.
      const replacement = encryptContextArchive(made.publicKey, await buildZip({ x: Buffer.alloc(4096, 7) }));
      await new Promise<void>((resolve) => {
        const req = httpRequest(made.uploadUrl, {
          method: "PUT",
          headers: { "content-length": String(replacement.length) },
        });
        req.on("error", () => resolve());
        req.write(replacement.subarray(0, replacement.length >> 1), () => {
          req.destroy();
          resolve();
        });
      });
      // Wait until the server has seen the cut (its log says so), then the archive is still the old one.
      const logger = world.stack.runtime.logger as unknown as { lines: { message: string }[] };
      for (let i = 0; i < 1000 && !logger.lines.some((l) => l.message.includes("cut short")); i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(logger.lines.map((l) => l.message)).to.include("context upload cut short; nothing was stored");
      expect((await objects().get(key))!.equals(good)).to.equal(true);
    });

    it("keeps each project's contexts to itself: 404 on every route, 400 when a session names one", async () => {
      const mine = await bb.contexts.create();
      for (const call of [
        () => otherBb.contexts.retrieve(mine.id),
        () => otherBb.contexts.update(mine.id),
        () => otherBb.contexts.delete(mine.id),
      ]) {
        expect(await rejectionOf(call())).to.be.instanceOf(Browserbase.NotFoundError);
      }
      const refused = await rejectionOf(
        otherBb.sessions.create({ browserSettings: { context: { id: mine.id, persist: true } } }),
      );
      expect(refused).to.be.instanceOf(Browserbase.BadRequestError);
      expect(refused.message).to.include("browserSettings.context.id");
      expect((await bb.contexts.retrieve(mine.id)).id).to.equal(mine.id);
    });

    it("deletes a context: 204, then 404, and a session can no longer name it", async () => {
      const made = await bb.contexts.create({ name: "to delete" });
      const archive = encryptContextArchive(made.publicKey, await buildZip({ "Local State": "{}" }));
      expect((await put(made.uploadUrl, archive)).status).to.equal(200);
      await bb.contexts.delete(made.id);
      // The archive goes with the key pair that alone could open it.
      expect(await objects().get(objectKeys.context(main.projectId, made.id))).to.equal(undefined);
      expect(await rejectionOf(bb.contexts.retrieve(made.id))).to.be.instanceOf(Browserbase.NotFoundError);
      expect(await rejectionOf(bb.contexts.delete(made.id))).to.be.instanceOf(Browserbase.NotFoundError);
      const refused = await rejectionOf(
        bb.sessions.create({ browserSettings: { context: { id: made.id } } }),
      );
      expect(refused).to.be.instanceOf(Browserbase.BadRequestError);
      // Its name is free again.
      const again = await bb.contexts.create({ name: "To Delete" });
      expect(again.id).to.not.equal(made.id);
    });

    it("keeps names unique in the project, case-insensitively, and refuses malformed bodies", async () => {
      await bb.contexts.create({ name: "  Login  " });
      const dup = await rejectionOf(bb.contexts.create({ name: "login" }));
      expect(dup).to.be.instanceOf(Browserbase.ConflictError);
      expect((await otherBb.contexts.create({ name: "login" })).id).to.be.a("string");
      for (const body of ['{"name": 5}', "[1]", "{", '{"projectId": "someone-else"}']) {
        const res = await fetch(`${world.url}/v1/contexts`, {
          method: "POST",
          headers: { "X-BB-API-Key": main.apiKey, "content-type": "application/json" },
          body,
        });
        expect(res.status, body).to.equal(400);
      }
    });

    it("lets one session at a time persist a context; readers are not blocked", async () => {
      const made = await bb.contexts.create();
      const writer = await bb.sessions.create({
        browserSettings: { context: { id: made.id, persist: true } },
      });
      expect(writer.contextId).to.equal(made.id);
      const second = await rejectionOf(
        bb.sessions.create({ browserSettings: { context: { id: made.id, persist: true } } }),
      );
      expect(second).to.be.instanceOf(Browserbase.ConflictError);
      expect(second.message).to.include(writer.id);
      const reader = await bb.sessions.create({
        browserSettings: { context: { id: made.id, persist: false } },
      });
      await bb.sessions.update(reader.id, { status: "REQUEST_RELEASE" });

      // Ended, but its profile is not written back yet: still refused, within the grace window.
      await bb.sessions.update(writer.id, { status: "REQUEST_RELEASE" });
      expect(
        await rejectionOf(
          bb.sessions.create({ browserSettings: { context: { id: made.id, persist: true } } }),
        ),
      ).to.be.instanceOf(Browserbase.ConflictError);
      // The writer (the Proxy, or the local stand-in) says the archive is written: free again.
      await world.stack.runtime.contexts.archiveWritten(main.projectId, made.id, Date.now(), writer.id);
      const next = await bb.sessions.create({ browserSettings: { context: { id: made.id, persist: true } } });
      await bb.sessions.update(next.id, { status: "REQUEST_RELEASE" });
    });
  });
});
