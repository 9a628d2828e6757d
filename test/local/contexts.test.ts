import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import Browserbase from "@browserbasehq/sdk";
import { expect } from "chai";
import { chromium, type Browser, type Page } from "playwright-core";
import { fromBuffer } from "yauzl";
import { generateApiKey } from "../../lib/apikeys";
import { createMemoryLogger } from "../../lib/logger";
import { objectKeys } from "../../lib/objects";
import { keys } from "../../lib/store";
import { chromiumPath } from "../../local/connect/browser";
import {
  cookieParam,
  SESSION_COOKIES_ENTRY,
  unzipProfile,
  zipProfileState,
} from "../../local/connect/context";
import { alive } from "../../local/connect/processes";
import type { ConnectServer } from "../../local/connect/server";
import { addApiKeyEntry, ensureSecretsFile, secretsPath } from "../../local/secrets-file";
import { startLocalStack, type LocalStack } from "../../local/stack";
import { uniqueProject } from "../support/fixtures";
import { sharedRedis } from "../support/redis";
import { buildZip, zipWithEntryName } from "../support/zips";
import { newStackHome, requireChromium } from "../support/browser";

/** Polls `check` every 100 ms until it holds or `timeoutMs` passes. */
async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Names of the entries of a zip. */
function zipEntryNames(zip: Buffer): Promise<string[]> {
  return new Promise((resolve, reject) => {
    fromBuffer(zip, { lazyEntries: false }, (error, zipfile) => {
      if (error) return reject(error);
      const names: string[] = [];
      zipfile.on("entry", (entry: { fileName: string }) => names.push(entry.fileName));
      zipfile.on("end", () => resolve(names));
      zipfile.on("error", reject);
    });
  });
}

function writeFile(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
}

describe("context profiles: what is packed and unpacked", () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "wc-context-unit-"));
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("packs cookies, storage and preferences, and leaves out caches, history, links, the extension and downloads", async () => {
    const profile = join(dir, "profile");
    for (const kept of [
      "Local State",
      "Default/Cookies",
      "Default/Preferences",
      "Default/Web Data",
      "Default/Local Storage/leveldb/000003.log",
      "Default/Session Storage/CURRENT",
      "Default/IndexedDB/http_127.0.0.1_1.indexeddb.leveldb/CURRENT",
      "Default/WebStorage/QuotaManager",
    ])
      writeFile(join(profile, kept), "kept");
    for (const skipped of [
      "Default/Cache/Cache_Data/index",
      "Default/Code Cache/js/index",
      "Default/GPUCache/index",
      "Default/WebStorage/1/CacheStorage/index",
      "Default/History",
      "Crashpad/settings.dat",
      "extensions/abc/manifest.json",
      "downloads/file.bin",
      ".config/chromium/x",
    ])
      writeFile(join(profile, skipped), "skipped");
    symlinkSync("/etc/passwd", join(profile, "Default/Local Storage/leveldb/link"));

    const { zip, files } = await zipProfileState(profile, []);
    const names = await zipEntryNames(zip);
    expect(names).to.have.members([
      "Local State",
      "Default/Cookies",
      "Default/Preferences",
      "Default/Web Data",
      "Default/Local Storage/leveldb/000003.log",
      "Default/Session Storage/CURRENT",
      "Default/IndexedDB/http_127.0.0.1_1.indexeddb.leveldb/CURRENT",
      "Default/WebStorage/QuotaManager",
    ]);
    expect(files).to.equal(8);
  });

  it("unpacks a packed profile with its session cookies, but not lock files or the stand-in's own folders", async () => {
    const cookie = { name: "s", value: "1", domain: "127.0.0.1", path: "/", secure: false, httpOnly: false };
    const zip = await buildZip({
      "Default/Cookies": "cookies",
      "Local State": "{}",
      SingletonLock: "host-1",
      "extensions/evil/manifest.json": "{}",
      [SESSION_COOKIES_ENTRY]: JSON.stringify([cookie, { name: 1 }]),
    });
    const profile = join(dir, "profile");
    mkdirSync(profile);
    const { files, sessionCookies } = await unzipProfile(zip, profile);
    expect(files).to.equal(2);
    expect(readFileSync(join(profile, "Default/Cookies"), "utf8")).to.equal("cookies");
    expect(readdirSync(profile).sort()).to.deep.equal(["Default", "Local State"]);
    expect(sessionCookies).to.deep.equal([cookie]);
  });

  it("refuses an archive entry that climbs out of the profile folder", async () => {
    const profile = join(dir, "a", "profile");
    mkdirSync(profile, { recursive: true });
    const zip = await zipWithEntryName("../../evil.txt");
    let failure: unknown;
    await unzipProfile(zip, profile).catch((error: unknown) => (failure = error));
    expect(String(failure)).to.match(/invalid relative path|outside/);
    expect(existsSync(join(dir, "evil.txt"))).to.equal(false);
  });

  it("sets a host-only session cookie through its URL and a domain cookie through its domain, never with an expiry", () => {
    const base = { name: "n", value: "v", path: "/a", secure: true, httpOnly: true, sameSite: "Lax" };
    expect(cookieParam({ ...base, domain: "example.com" })).to.deep.equal({
      name: "n",
      value: "v",
      path: "/a",
      secure: true,
      httpOnly: true,
      sameSite: "Lax",
      url: "https://example.com/a",
    });
    const domainCookie = cookieParam({ ...base, domain: ".example.com" });
    expect(domainCookie).to.include({ domain: ".example.com" });
    expect(domainCookie).to.not.have.property("url");
    expect(domainCookie).to.not.have.property("expires");
  });
});

describe("contexts in the local connect server (profiles kept between sessions)", function () {
  // Each session starts a real browser; a write-back quits it gracefully and packs its profile.
  this.timeout(240_000);

  let stack: LocalStack;
  let connect: ConnectServer;
  let home: string;
  let projectId: string;
  let bb: Browserbase;
  let pageServer: Server;
  let origin: string;
  const logger = createMemoryLogger();
  const browsers: Browser[] = [];

  before(async () => {
    const browserPath = requireChromium();
    const fresh = newStackHome("wc-contexts-test-");
    home = fresh.home;
    const file = fresh.secretsFile;
    projectId = uniqueProject("ctx");
    const { key, entry } = generateApiKey(projectId, { name: "contexts test" });
    addApiKeyEntry(file, entry);
    stack = await startLocalStack({
      home,
      port: 0,
      connectPort: 0,
      redisUrl: (await sharedRedis()).url,
      logger,
      chromiumPath: browserPath,
    });
    connect = stack.connect!;
    bb = new Browserbase({ apiKey: key, baseURL: stack.url });

    // /set?v=X sets a persistent cookie (a year), a session cookie and a localStorage entry to X,
    // and stores X in IndexedDB; /read sets nothing.
    pageServer = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://localhost");
      const headers: Record<string, string | string[]> = { "content-type": "text/html" };
      let script = "";
      const value = url.searchParams.get("v");
      if (url.pathname === "/set" && value) {
        headers["set-cookie"] = [
          `persistent=${value}; Max-Age=31536000; Path=/; SameSite=Lax`,
          `session=${value}; Path=/; SameSite=Lax`,
        ];
        script = `<script>
          localStorage.setItem("wc-key", ${JSON.stringify(value)});
          const open = indexedDB.open("wc", 1);
          open.onupgradeneeded = () => open.result.createObjectStore("kv");
          open.onsuccess = () => {
            const tx = open.result.transaction("kv", "readwrite");
            tx.objectStore("kv").put(${JSON.stringify(value)}, "wc-key");
            tx.oncomplete = () => { document.title = "stored"; };
          };
        </script>`;
      }
      res.writeHead(200, headers);
      res.end(`<!doctype html><html><head><title>page</title></head><body>${script}</body></html>`);
    });
    await new Promise<void>((resolve) => pageServer.listen(0, "127.0.0.1", () => resolve()));
    origin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;
  });

  after(async () => {
    await Promise.all(browsers.map((browser) => browser.close().catch(() => undefined)));
    if (stack) await stack.stop();
    if (pageServer) await new Promise<void>((resolve) => pageServer.close(() => resolve()));
    if (home) rmSync(home, { recursive: true, force: true });
  });

  /** Connects Playwright to the session and returns its first page. */
  async function pageOf(connectUrl: string): Promise<Page> {
    const browser = await chromium.connectOverCDP(connectUrl);
    browsers.push(browser);
    const context = browser.contexts()[0];
    return context.pages()[0] ?? (await context.newPage());
  }

  /** Visits /set?v=value and waits until the page has stored it everywhere. */
  async function store(page: Page, value: string): Promise<void> {
    await page.goto(`${origin}/set?v=${value}`);
    await page.waitForFunction('document.title === "stored"');
  }

  /** What the session's browser holds for the test page's origin. */
  async function stateOf(page: Page) {
    await page.goto(`${origin}/read`);
    const cookies = await page.context().cookies(origin);
    const cookie = (name: string) => cookies.find((c) => c.name === name);
    // Strings, not functions: this project's TypeScript has no DOM types.
    const local = await page.evaluate<string | null>('localStorage.getItem("wc-key")');
    const indexed = await page.evaluate<unknown>(`new Promise((resolve) => {
      const open = indexedDB.open("wc", 1);
      open.onupgradeneeded = () => open.result.createObjectStore("kv");
      open.onsuccess = () => {
        const get = open.result.transaction("kv").objectStore("kv").get("wc-key");
        get.onsuccess = () => resolve(get.result ?? null);
      };
    })`);
    return {
      persistent: cookie("persistent")?.value,
      persistentExpires: cookie("persistent")?.expires,
      session: cookie("session")?.value,
      sessionExpires: cookie("session")?.expires,
      local,
      indexed,
    };
  }

  /** Releases the session through the API and waits until its browser has gone. */
  async function release(sessionId: string): Promise<void> {
    const browser = await connect.browserOf(sessionId);
    await bb.sessions.update(sessionId, { status: "REQUEST_RELEASE" });
    await waitFor(
      "the released session's browser to end",
      () => !connect.liveSessionIds().includes(sessionId) && (!browser || !alive(browser.pid)),
    );
  }

  /** Waits until the context's updatedAt moves past `previous`: its write-back has landed. */
  async function writeBack(contextId: string, previous: string): Promise<string> {
    let updatedAt = previous;
    await waitFor(
      "the context's write-back",
      async () => {
        updatedAt = (await bb.contexts.retrieve(contextId)).updatedAt;
        return updatedAt !== previous;
      },
      90_000,
    );
    return updatedAt;
  }

  const withContext = (id: string, persist: boolean) => ({
    api_timeout: 300,
    keepAlive: true,
    browserSettings: { context: { id, persist } },
  });

  it("saves a persisting session's cookies, localStorage and IndexedDB, restores them in the next sessions, and keeps them when a session without persist changes them", async () => {
    const context = await bb.contexts.create();
    const created = (await bb.contexts.retrieve(context.id)).updatedAt;

    // Session 1 persists: it starts fresh (the context has no profile yet) and stores "one".
    const first = await bb.sessions.create(withContext(context.id, true));
    const page1 = await pageOf(first.connectUrl);
    expect(await stateOf(page1)).to.include({ persistent: undefined, local: null, indexed: null });
    await store(page1, "one");

    // While it is live, a second session that would persist the same context is refused.
    let refusal: { status?: number; message?: string } | undefined;
    await bb.sessions
      .create(withContext(context.id, true))
      .catch((error: typeof refusal) => (refusal = error));
    expect(refusal?.status, refusal?.message).to.equal(409);

    await release(first.id);
    const saved = await writeBack(context.id, created);

    // Session 2 reads the context: everything session 1 stored is there, the session cookie
    // still a session cookie and the persistent one with its expiry.
    const second = await bb.sessions.create(withContext(context.id, false));
    const page2 = await pageOf(second.connectUrl);
    const restored = await stateOf(page2);
    expect(restored).to.include({ persistent: "one", session: "one", local: "one", indexed: "one" });
    expect(restored.sessionExpires).to.equal(-1);
    expect(restored.persistentExpires).to.be.greaterThan(Date.now() / 1000 + 300 * 24 * 3600);
    await release(second.id);

    // Session 3 reads it too and changes everything, but does not persist.
    const third = await bb.sessions.create(withContext(context.id, false));
    const page3 = await pageOf(third.connectUrl);
    expect(await stateOf(page3)).to.include({ persistent: "one", local: "one" });
    await store(page3, "three");
    expect(await stateOf(page3)).to.include({ persistent: "three", session: "three", local: "three" });
    await release(third.id);
    expect((await bb.contexts.retrieve(context.id)).updatedAt).to.equal(saved);

    // Session 4 still sees session 1's values.
    const fourth = await bb.sessions.create(withContext(context.id, false));
    const page4 = await pageOf(fourth.connectUrl);
    expect(await stateOf(page4)).to.include({
      persistent: "one",
      session: "one",
      local: "one",
      indexed: "one",
    });
    await release(fourth.id);

    // The object store holds only the encrypted archive: not even the zip's entry names show.
    const archive = await stack.runtime.objects!.get(objectKeys.context(projectId, context.id));
    expect(archive!.subarray(0, 4).toString("ascii")).to.equal("WCC1");
    expect(archive!.includes(Buffer.from("Default/Cookies"))).to.equal(false);
  });

  it("starts a session with a fresh profile when the context's archive is damaged, and its write-back replaces the archive", async () => {
    const context = await bb.contexts.create();
    const created = (await bb.contexts.retrieve(context.id)).updatedAt;
    const key = objectKeys.context(projectId, context.id);
    await stack.runtime.objects!.put(
      key,
      Buffer.from("WCC1 this is not an archive"),
      "application/octet-stream",
    );

    const first = await bb.sessions.create(withContext(context.id, true));
    const page1 = await pageOf(first.connectUrl);
    expect(await stateOf(page1)).to.include({ persistent: undefined, local: null });
    await store(page1, "fixed");
    await release(first.id);
    await writeBack(context.id, created);

    const second = await bb.sessions.create(withContext(context.id, false));
    const page2 = await pageOf(second.connectUrl);
    expect(await stateOf(page2)).to.include({ persistent: "fixed", session: "fixed", local: "fixed" });
    await release(second.id);

    const failure = logger.lines.find(
      (line) =>
        line.message === "could not restore the context's profile; starting with a fresh one" &&
        line.extra?.contextId === context.id,
    );
    expect(failure, "the damaged archive is logged").to.not.equal(undefined);
    // No log line carries key material.
    expect(JSON.stringify(logger.lines)).to.not.match(/PRIVATE KEY|BEGIN PUBLIC KEY/);
  });

  it("saves the context of a session that times out (ended by the sweep's timed_out event), which frees the context for the next persisting session", async () => {
    const context = await bb.contexts.create();
    const created = (await bb.contexts.retrieve(context.id)).updatedAt;
    const first = await bb.sessions.create(withContext(context.id, true));
    const page1 = await pageOf(first.connectUrl);
    await store(page1, "expired");
    const browser = await connect.browserOf(first.id);

    // Move the session's expiry into the past; the next create's sweep ends it as TIMED_OUT and
    // publishes timed_out (the stand-in's own expiry timer still points at the original time).
    const redis = await stack.runtime.redis();
    const past = Date.now() - 1000;
    await redis.hset(keys.session(projectId, first.id), "expiresAt", past);
    await redis.zadd(keys.active(projectId), past, first.id);
    const bystander = await bb.sessions.create({ api_timeout: 60 });
    expect((await bb.sessions.retrieve(first.id)).status).to.equal("TIMED_OUT");
    await waitFor("the timed-out session's browser to end", () => !alive(browser!.pid));
    await writeBack(context.id, created);
    await bb.sessions.update(bystander.id, { status: "REQUEST_RELEASE" });

    // The write-back released the persist lock: no 409 for the rest of the grace window.
    const second = await bb.sessions.create(withContext(context.id, true));
    const page2 = await pageOf(second.connectUrl);
    expect(await stateOf(page2)).to.include({ persistent: "expired", session: "expired", local: "expired" });
    await release(second.id);
  });

  it("saves persisting sessions' contexts when the stack stops, and a restarted stack restores them", async () => {
    const otherHome = mkdtempSync(join(tmpdir(), "wc-contexts-restart-"));
    const file = secretsPath(otherHome);
    ensureSecretsFile(file);
    const otherProject = uniqueProject("ctx-restart");
    const { key, entry } = generateApiKey(otherProject, { name: "contexts restart test" });
    addApiKeyEntry(file, entry);
    const start = async () => {
      const started = await startLocalStack({
        home: otherHome,
        port: 0,
        connectPort: 0,
        redisUrl: (await sharedRedis()).url,
        logger,
        chromiumPath: chromiumPath(),
      });
      return { started, api: new Browserbase({ apiKey: key, baseURL: started.url }) };
    };
    let running: LocalStack | undefined;
    try {
      const before = await start();
      running = before.started;
      const context = await before.api.contexts.create();
      const created = (await before.api.contexts.retrieve(context.id)).updatedAt;
      const session = await before.api.sessions.create(withContext(context.id, true));
      const page = await pageOf(session.connectUrl);
      await store(page, "shutdown");

      await running.stop();
      running = undefined;
      const redis = await stack.runtime.redis();
      const fields = await redis.hgetall(keys.context(otherProject, context.id));
      expect(Number(fields.updatedAt), "updatedAt after the shutdown").to.be.greaterThan(Date.parse(created));
      expect(fields.persistHolder).to.equal(undefined);

      const after = await start();
      running = after.started;
      const next = await after.api.sessions.create(withContext(context.id, false));
      const restored = await stateOf(await pageOf(next.connectUrl));
      expect(restored).to.include({ persistent: "shutdown", session: "shutdown", local: "shutdown" });
    } finally {
      await running?.stop();
      rmSync(otherHome, { recursive: true, force: true });
    }
  });
});
