import { rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import Browserbase, { toFile } from "@browserbasehq/sdk";
import { expect } from "chai";
import { chromium, type Browser } from "playwright-core";
import { generateApiKey } from "../../lib/apikeys";
import { createMemoryLogger } from "../../lib/logger";
import { addApiKeyEntry } from "../../local/secrets-file";
import { startLocalStack, type LocalStack } from "../../local/stack";
import { rejectionOf } from "../compat/support";
import { uniqueProject } from "../support/fixtures";
import { sharedRedis } from "../support/redis";
import { unzipEntries } from "../support/zips";
import { newStackHome, requireChromium } from "../support/browser";

/** Polls `check` every 100 ms until it yields a value or `timeoutMs` passes. */
async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The bytes the page's download link serves: not text, so a byte-for-byte check means something. */
const DOWNLOAD = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 37) % 256));

describe("session files through the local stack: uploads, downloads and the CDP log", function () {
  this.timeout(240_000);
  let stack: LocalStack;
  let home: string;
  let bb: Browserbase;
  let otherBb: Browserbase;
  let pageServer: Server;
  let origin: string;
  const browsers: Browser[] = [];

  before(async () => {
    const browserPath = requireChromium();
    const fresh = newStackHome("wc-files-test-");
    home = fresh.home;
    const file = fresh.secretsFile;
    const mine = generateApiKey(uniqueProject("files"), { name: "files test" });
    const theirs = generateApiKey(uniqueProject("files-other"), { name: "files test" });
    addApiKeyEntry(file, mine.entry);
    addApiKeyEntry(file, theirs.entry);
    stack = await startLocalStack({
      home,
      port: 0,
      connectPort: 0,
      redisUrl: (await sharedRedis()).url,
      logger: createMemoryLogger(),
      chromiumPath: browserPath,
    });
    bb = new Browserbase({ apiKey: mine.key, baseURL: stack.url, maxRetries: 0 });
    otherBb = new Browserbase({ apiKey: theirs.key, baseURL: stack.url, maxRetries: 0 });

    pageServer = createServer((req, res) => {
      if (req.url === "/report") {
        res.writeHead(200, {
          "content-type": "application/octet-stream",
          "content-disposition": 'attachment; filename="report.bin"',
        });
        res.end(DOWNLOAD);
        return;
      }
      res.writeHead(200, { "content-type": "text/html" });
      res.end(`<!doctype html><title>files</title>
        <input type="file" id="picker">
        <a id="download" href="/report">report</a>
        <pre id="picked"></pre>
        <script>
          document.getElementById("picker").addEventListener("change", async (event) => {
            const file = event.target.files[0];
            document.getElementById("picked").textContent = file.name + ":" + (await file.text());
          });
        </script>`);
    });
    await new Promise<void>((resolve) => pageServer.listen(0, "127.0.0.1", () => resolve()));
    origin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;
  });

  after(async () => {
    for (const browser of browsers) await browser.close().catch(() => undefined);
    pageServer?.close();
    await stack?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  it("an uploaded file reaches a page's file input, a download comes back in the zip, and the log lists the calls", async () => {
    const session = await bb.sessions.create();
    const uploaded = await bb.sessions.uploads.create(session.id, {
      file: await toFile(Buffer.from("quarterly numbers"), "numbers.txt"),
    });
    expect(uploaded.message).to.include("/tmp/.uploads/numbers.txt");

    const browser = await chromium.connectOverCDP(session.connectUrl);
    browsers.push(browser);
    const page = browser.contexts()[0].pages()[0] ?? (await browser.contexts()[0].newPage());
    await page.goto(`${origin}/`);

    // The upload: the file input gets it by its path in the session's browser.
    const cdp = await page.context().newCDPSession(page);
    const { root } = await cdp.send("DOM.getDocument");
    const { nodeId } = await cdp.send("DOM.querySelector", { nodeId: root.nodeId, selector: "#picker" });
    await cdp.send("DOM.setFileInputFiles", { nodeId, files: ["/tmp/.uploads/numbers.txt"] });
    await page.waitForFunction(`document.getElementById("picked").textContent !== ""`);
    // Playwright's locator actions too (they once waited forever through the stand-in).
    expect(await page.textContent("#picked", { timeout: 30_000 })).to.equal("numbers.txt:quarterly numbers");

    // A path the session was not given is refused; so is an upload it does not have.
    const refused = await rejectionOf(cdp.send("DOM.setFileInputFiles", { nodeId, files: ["/etc/passwd"] }));
    expect(refused.message).to.match(/only files uploaded to the session/);
    const missing = await rejectionOf(
      cdp.send("DOM.setFileInputFiles", { nodeId, files: ["/tmp/.uploads/nothing.txt"] }),
    );
    expect(missing.message).to.match(/no file named nothing.txt was uploaded/);

    // The download: a click on the link; the zip holds the file, byte for byte.
    expect((await (await bb.sessions.downloads.list(session.id)).arrayBuffer()).byteLength).to.equal(0);
    await page.click("#download", { timeout: 30_000 });
    const zip = await waitFor("the download in the session's zip", async () => {
      const body = Buffer.from(await (await bb.sessions.downloads.list(session.id)).arrayBuffer());
      return body.length > 0 ? body : undefined;
    });
    const entries = await unzipEntries(zip);
    expect([...entries.keys()]).to.deep.equal(["report.bin"]);
    expect(entries.get("report.bin")!.equals(DOWNLOAD)).to.equal(true);

    // The log: the calls this script made, with their params and answers.
    const log = await waitFor("the navigation in the session's log", async () => {
      const entries = await bb.sessions.logs.list(session.id);
      return entries.some((e) => e.method === "DOM.setFileInputFiles") ? entries : undefined;
    });
    const navigate = log.find((e) => e.method === "Page.navigate" && e.request?.params.url === `${origin}/`);
    expect(navigate, "Page.navigate is logged with its url").to.not.equal(undefined);
    expect(navigate!.pageId).to.be.at.least(1);
    expect(navigate!.frameId).to.be.a("string");
    expect(navigate!.loaderId).to.be.a("string");
    expect(navigate!.sessionId).to.be.a("string").and.not.equal("");
    expect(navigate!.response!.timestamp).to.be.at.least(navigate!.request!.timestamp!);
    const setFiles = log.filter((e) => e.method === "DOM.setFileInputFiles");
    expect(setFiles.map((e) => e.request!.params.files)).to.deep.include(["/tmp/.uploads/numbers.txt"]);

    // Another project sees none of it.
    for (const call of [
      () => otherBb.sessions.uploads.create(session.id, { file: Buffer.from("x") as never }),
      () => otherBb.sessions.downloads.list(session.id),
      () => otherBb.sessions.logs.list(session.id),
    ]) {
      expect(await rejectionOf(call())).to.be.instanceOf(Browserbase.NotFoundError);
    }

    // After the session ends, its downloads and log stay; uploads are refused.
    await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });
    const after = Buffer.from(await (await bb.sessions.downloads.list(session.id)).arrayBuffer());
    expect((await unzipEntries(after)).get("report.bin")!.equals(DOWNLOAD)).to.equal(true);
    expect((await bb.sessions.logs.list(session.id)).length).to.be.at.least(log.length);
    const late = await rejectionOf(
      bb.sessions.uploads.create(session.id, { file: await toFile(Buffer.from("late"), "late.txt") }),
    );
    expect(late).to.be.instanceOf(Browserbase.BadRequestError);
  });
});
