/**
 * The official, unmodified Stagehand 4 (`@browserbasehq/stagehand`) end to end against the local
 * stack: its `browserbase` helper talks to the API through `@browserbasehq/sdk` (pointed here
 * with `baseUrl`), uploads its own "Stagehand Runtime" extension to `/v1/extensions`, creates the
 * session with that extension, and dials `connectUrl`; the local connect server unpacks the
 * extension into the session's profile and starts Debian Chromium with it loaded, and Stagehand's
 * handshake with the extension's service worker is the proof that the browser runs it. No LLM:
 * where Stagehand takes a client LLM (`model.generate`), a canned one answers.
 *
 * Stagehand 4 needs Node 22.18+ (a global WebSocket): `npm test` runs on the Node 22 that npm
 * installs from the registry.
 */
import { rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import Browserbase, { toFile } from "@browserbasehq/sdk";
import { expect } from "chai";
import { WebSocket } from "ws";
import { z } from "zod";
import { generateApiKey } from "../../lib/apikeys";
import { createMemoryLogger } from "../../lib/logger";
import { addApiKeyEntry, upsertProject } from "../../local/secrets-file";
import { startLocalStack, type LocalStack } from "../../local/stack";
import { uniqueProject } from "../support/fixtures";
import { sharedRedis } from "../support/redis";
import { rejectionOf, startCompatStack, startFaultProxy, type FaultProxy } from "./support";
import { newStackHome, requireChromium } from "../support/browser";

/** The part of Stagehand's public API these tests use (its types resolve only under ESM resolution). */
interface StagehandPage {
  goto(url: string): Promise<unknown>;
  title(): Promise<string>;
  url(): Promise<string>;
  evaluate<R>(expression: string): Promise<R>;
  locator(selector: string): {
    textContent(): Promise<string>;
    setInputFiles(files: { name: string; mimeType?: string; buffer: Uint8Array }): Promise<void>;
  };
}
interface StagehandBrowser {
  readonly sessionId?: string;
  readonly context: { pages(): Promise<StagehandPage[]>; newPage(url?: string): Promise<StagehandPage> };
  close(): Promise<void>;
  disconnect(): Promise<void>;
}
interface LLMParams {
  messages: { role: string; content: unknown }[];
  responseFormat?: { type: string; name?: string };
}
interface StagehandInstance {
  extract(instruction: string, schema: z.ZodType): Promise<{ data: unknown }>;
  close(): Promise<void>;
}
interface StagehandModule {
  browserbase: {
    launch(options: { apiKey: string; baseUrl: string } & Record<string, unknown>): Promise<StagehandBrowser>;
    connect(options: { apiKey: string; baseUrl: string; sessionId: string }): Promise<StagehandBrowser>;
  };
  Stagehand: {
    create(options: {
      browser: StagehandBrowser;
      cache?: boolean;
      logging?: { level: string };
      model?: { generate(params: LLMParams): Promise<unknown> };
    }): Promise<StagehandInstance>;
  };
}

/**
 * Stagehand 4 ships as an ES module only. Under `module: commonjs` TypeScript turns `import()`
 * into `require()`, which its package exports refuse, so the import goes through a Function.
 */
const importEsm = new Function("specifier", "return import(specifier)") as <T>(
  specifier: string,
) => Promise<T>;

const PAGE_TITLE = "WallCrawler Stagehand page";

/** Polls `check` every 100 ms until it holds or `timeoutMs` passes. */
async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("compat: unmodified Stagehand 4 end to end on real Chromium", function () {
  // Each launch starts a browser and waits for the extension's service worker: seconds, more on a busy machine.
  this.timeout(90_000);

  let stagehand: StagehandModule;
  let stack: LocalStack;
  let home: string;
  let pageServer: Server;
  let pageUrl: string;
  let apiKey: string;
  let projectId: string;
  let bb: Browserbase;
  /** Every URL the test process fetched outside loopback (Stagehand's calls to Browserbase's cloud). */
  const outbound: string[] = [];
  const realFetch = globalThis.fetch;

  before(async () => {
    const browserPath = requireChromium();
    stagehand = await importEsm<StagehandModule>("@browserbasehq/stagehand");
    const fresh = newStackHome("wc-stagehand-");
    home = fresh.home;
    const file = fresh.secretsFile;
    projectId = uniqueProject("stagehand");
    const minted = generateApiKey(projectId, { name: "stagehand test" });
    addApiKeyEntry(file, minted.entry);
    upsertProject(file, projectId, { concurrency: 10 });
    apiKey = minted.key;
    stack = await startLocalStack({
      home,
      port: 0,
      connectPort: 0,
      redisUrl: (await sharedRedis()).url,
      logger: createMemoryLogger(),
      chromiumPath: browserPath,
    });
    // A session without keepAlive ends this long after its last client left (default 2 s).
    stack.connect!.disconnectGraceMs = 500;
    bb = new Browserbase({ apiKey, baseURL: stack.url });

    pageServer = createServer((req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(
        `<!doctype html><html><head><title>${PAGE_TITLE}</title></head><body>` +
          `<h1 id="greeting">Hello from ${req.url}</h1>` +
          `<input type="file" id="upload"></body></html>`,
      );
    });
    await new Promise<void>((resolve) => pageServer.listen(0, "127.0.0.1", () => resolve()));
    pageUrl = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;

    globalThis.fetch = (input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      if (!["127.0.0.1", "localhost", "[::1]"].includes(url.hostname))
        outbound.push(url.origin + url.pathname);
      return realFetch(input, init);
    };
  });

  after(async () => {
    globalThis.fetch = realFetch;
    await stack?.stop();
    if (pageServer) await new Promise<void>((resolve) => pageServer.close(() => resolve()));
    if (home) rmSync(home, { recursive: true, force: true });
  });

  const status = async (id: string) => (await bb.sessions.retrieve(id)).status;

  it("launch uploads Stagehand's extension, the browser runs it, and Stagehand drives a loopback page; close releases the session and deletes the extension", async () => {
    const proxy: FaultProxy = await startFaultProxy(stack.url, () => "pass");
    let browser: StagehandBrowser | undefined;
    try {
      // As a user writes it: no extensionId, so Stagehand uploads its own extension first.
      browser = await stagehand.browserbase.launch({ apiKey, baseUrl: proxy.url });
      const sessionId = browser.sessionId!;
      const instance = await stagehand.Stagehand.create({ browser, cache: false, logging: { level: "off" } });
      const page = (await browser.context.pages())[0] ?? (await browser.context.newPage());
      await page.goto(`${pageUrl}/first`);
      expect(await page.title()).to.equal(PAGE_TITLE);
      expect(await page.locator("#greeting").textContent()).to.equal("Hello from /first");

      // What Stagehand sent: the upload, then a create naming the uploaded extension.
      const [upload, create] = proxy.seen;
      expect(`${upload.method} ${upload.url}`).to.equal("POST /v1/extensions");
      expect(upload.headers["content-type"]).to.match(/^multipart\/form-data; boundary=/);
      expect(`${create.method} ${create.url}`).to.equal("POST /v1/sessions");
      const createBody = JSON.parse(create.body!);
      expect(createBody.userMetadata).to.include({ stagehand: "true", stagehand_sdk_language: "typescript" });
      const extensionId = createBody.extensionId as string;
      const record = await stack.runtime.store.get(projectId, sessionId);
      expect(record?.extensionId).to.equal(extensionId);
      const meta = await stack.runtime.extensions.get(projectId, extensionId);
      expect(meta).to.deep.include({ name: "Stagehand Runtime", fileName: "stagehand-extension.zip" });

      await instance.close();
      await browser.close();
      browser = undefined;
      expect(await status(sessionId)).to.equal("COMPLETED");
      expect(proxy.seen.map((req) => `${req.method} ${req.url}`).slice(-2)).to.deep.equal([
        `POST /v1/sessions/${sessionId}`,
        `DELETE /v1/extensions/${extensionId}`,
      ]);
      expect(await stack.runtime.extensions.get(projectId, extensionId)).to.equal(undefined);
      await waitFor("the browser to end", async () => !stack.connect!.liveSessionIds().includes(sessionId));
      // With cache off and a model of its own, Stagehand sent nothing to Browserbase's cloud.
      expect(outbound).to.deep.equal([]);
    } finally {
      await browser?.close().catch(() => undefined);
      await proxy.close();
    }
  });

  it("setInputFiles hands a file to the page's file input", async () => {
    const browser = await stagehand.browserbase.launch({ apiKey, baseUrl: stack.url });
    try {
      await stagehand.Stagehand.create({ browser, cache: false, logging: { level: "off" } });
      const page = (await browser.context.pages())[0] ?? (await browser.context.newPage());
      await page.goto(`${pageUrl}/upload`);
      const content = new TextEncoder().encode("wallcrawler upload test\n");
      await page
        .locator("#upload")
        .setInputFiles({ name: "notes.txt", mimeType: "text/plain", buffer: content });
      const picked = await page.evaluate<{ name: string; size: number; text: string }>(
        `(async () => { const f = document.querySelector("#upload").files[0]; return { name: f.name, size: f.size, text: await f.text() }; })()`,
      );
      expect(picked).to.deep.equal({
        name: "notes.txt",
        size: content.length,
        text: "wallcrawler upload test\n",
      });
    } finally {
      await browser.close();
    }
  });

  it("extract runs through a client LLM that gets the page's text from the browser, and returns its canned answer", async () => {
    const calls: LLMParams[] = [];
    const browser = await stagehand.browserbase.launch({ apiKey, baseUrl: stack.url });
    try {
      const instance = await stagehand.Stagehand.create({
        browser,
        cache: false,
        logging: { level: "off" },
        model: {
          async generate(params) {
            calls.push(params);
            const structured =
              params.responseFormat?.name === "Metadata"
                ? { progress: "read the heading", completed: true }
                : { greeting: "canned greeting" };
            return {
              role: "assistant",
              content: { type: "text", text: JSON.stringify(structured) },
              outputFormat: "json_schema",
              structuredContent: structured,
            };
          },
        },
      });
      const page = (await browser.context.pages())[0] ?? (await browser.context.newPage());
      await page.goto(`${pageUrl}/extract-me`);
      const result = await instance.extract("the greeting", z.object({ greeting: z.string() }));
      expect(result.data).to.deep.equal({ greeting: "canned greeting" });
      // The extension read the page in this session's browser and put it in the prompt.
      expect(JSON.stringify(calls[0].messages)).to.include("Hello from /extract-me");
      expect(outbound).to.deep.equal([]);
    } finally {
      await browser.close();
    }
  });

  it("keepAlive: disconnect leaves the session running, and browserbase.connect finds the page opened before", async () => {
    const browser = await stagehand.browserbase.launch({ apiKey, baseUrl: stack.url, keepAlive: true });
    const sessionId = browser.sessionId!;
    await stagehand.Stagehand.create({ browser, cache: false, logging: { level: "off" } });
    const first = (await browser.context.pages())[0] ?? (await browser.context.newPage());
    await first.goto(`${pageUrl}/kept`);
    await browser.disconnect();
    expect(await status(sessionId)).to.equal("RUNNING");

    const again = await stagehand.browserbase.connect({ apiKey, baseUrl: stack.url, sessionId });
    try {
      await stagehand.Stagehand.create({ browser: again, cache: false, logging: { level: "off" } });
      const urls = await Promise.all((await again.context.pages()).map((page) => page.url()));
      expect(urls).to.include(`${pageUrl}/kept`);
      expect(await status(sessionId)).to.equal("RUNNING");
    } finally {
      await again.close();
    }
    expect(await status(sessionId)).to.equal("COMPLETED");
  });

  it("a session without keepAlive ends a moment after its client disconnects, and connecting to it is then refused", async () => {
    const browser = await stagehand.browserbase.launch({ apiKey, baseUrl: stack.url });
    const sessionId = browser.sessionId!;
    await stagehand.Stagehand.create({ browser, cache: false, logging: { level: "off" } });
    await browser.disconnect();
    await waitFor(
      "the session to end after its last client left",
      async () => (await status(sessionId)) !== "RUNNING",
    );
    expect(await status(sessionId)).to.equal("COMPLETED");

    const refused = await rejectionOf(
      stagehand.browserbase.connect({ apiKey, baseUrl: stack.url, sessionId }),
    );
    expect(refused.message).to.equal("Browserbase session is not available for connection");
  });

  it("connecting to a released session is refused at the connect host with 410", async () => {
    const session = await bb.sessions.create({ keepAlive: true });
    await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });
    const refused = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const socket = new WebSocket(session.connectUrl);
      socket.on("open", () => reject(new Error("the connect host accepted a released session")));
      socket.on("unexpected-response", (_request, response) => {
        let body = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => (body += chunk));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
      });
      socket.on("error", (error) => {
        if (!/Unexpected server response/.test(error.message)) reject(error);
      });
    });
    expect(refused.status).to.equal(410);
    expect(JSON.parse(refused.body).message).to.match(/was released at .*; create a new session/);
  });

  it("a session created with an extension starts with it even when the extension was deleted before the first connect", async () => {
    const { getExtensionArchive } = await importEsm<{ getExtensionArchive(): Promise<Uint8Array> }>(
      "@browserbasehq/stagehand",
    );
    const uploaded = await bb.extensions.create({
      file: await toFile(Buffer.from(await getExtensionArchive()), "stagehand-extension.zip"),
    });
    const session = await bb.sessions.create({ extensionId: uploaded.id, keepAlive: true });
    await bb.extensions.delete(uploaded.id);
    expect(await rejectionOf(bb.extensions.retrieve(uploaded.id))).to.have.property("status", 404);

    // The browser starts on this first connect, and Stagehand's handshake finds the extension in it.
    const browser = await stagehand.browserbase.connect({
      apiKey,
      baseUrl: stack.url,
      sessionId: session.id,
    });
    try {
      await stagehand.Stagehand.create({ browser, cache: false, logging: { level: "off" } });
      const page = (await browser.context.pages())[0] ?? (await browser.context.newPage());
      await page.goto(`${pageUrl}/after-delete`);
      expect(await page.title()).to.equal(PAGE_TITLE);
    } finally {
      await browser.close();
    }
  });
});

describe("compat: Stagehand 4 reconnect checks the region", function () {
  this.timeout(30_000);

  it("connect refuses a session whose region is not one of Browserbase's four", async () => {
    const { browserbase } = await importEsm<StagehandModule>("@browserbasehq/stagehand");
    const elsewhere = await startCompatStack({ projects: [{}], env: { WALLCRAWLER_REGION: "eu-west-1" } });
    try {
      const [project] = elsewhere.projects;
      const sdk = new Browserbase({ apiKey: project.apiKey, baseURL: elsewhere.url });
      const live = await sdk.sessions.create();
      expect(live.region).to.equal("eu-west-1");
      const error = await rejectionOf(
        browserbase.connect({ apiKey: project.apiKey, baseUrl: elsewhere.url, sessionId: live.id }),
      );
      expect(error.message).to.equal("Failed to retrieve the Browserbase session");
      await sdk.sessions.update(live.id, { status: "REQUEST_RELEASE" });
    } finally {
      await elsewhere.stop();
    }
  });
});
