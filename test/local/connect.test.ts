import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Browserbase from "@browserbasehq/sdk";
import { expect } from "chai";
import { Redis } from "ioredis";
import { chromium } from "playwright-core";
import { generateApiKey } from "../../lib/apikeys";
import { createMemoryLogger } from "../../lib/logger";
import { keys, SESSION_EVENTS_CHANNEL } from "../../lib/store";
import { mintSessionToken, type TokenKeySet } from "../../lib/tokens";
import { alive, processesMentioning } from "../../local/connect/processes";
import { CLOSE, type ConnectServer } from "../../local/connect/server";
import { addApiKeyEntry, mintFirstKey, readSecrets, secretsPath } from "../../local/secrets-file";
import { startLocalStack, type LocalStack } from "../../local/stack";
import { rawCdp, upgrade } from "../support/cdp";
import { sharedRedis } from "../support/redis";
import { newStackHome, requireChromium } from "../support/browser";

const PAGE_TITLE = "WallCrawler connect test page";
/** The connect server's release grace period in these tests (the default is 2 s). */
const GRACE_MS = 300;

/** Resolves after `ms` milliseconds. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Running (not zombie) processes in the process groups led by `leaders` (Linux: /proc). Each
 * browser leads its own group, so this finds renderers and helpers that outlived it.
 */
function groupMembers(leaders: number[]): number[] {
  if (process.platform !== "linux" || leaders.length === 0) return [];
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Fields after the parenthesised command name: state, ppid, pgrp, ...
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (state !== "Z" && leaders.includes(Number(pgrp))) found.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

/** Polls `check` every 50 ms until it holds or `timeoutMs` passes. */
async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A raw CDP client on a connectUrl: sends commands, and records how the socket closed. */
async function cdpClient(url: string) {
  const raw = await rawCdp(url);
  const send = async (method: string, params: Record<string, unknown> = {}) =>
    (await raw.send(method, params)).result as Record<string, unknown>;
  return { socket: raw.socket, closed: raw.closed, send };
}

/** TCP ports (v4 and v6) on which any of `pids` listens (Linux: /proc/net and each process's fds). */
function listeningPorts(pids: number[]): number[] {
  const listening = new Map<string, number>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of readFileSync(table, "utf8").split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is HEX_IP:HEX_PORT; st 0A is LISTEN; the inode is field 9.
      if (fields.length > 9 && fields[3] === "0A")
        listening.set(fields[9], parseInt(fields[1].split(":")[1], 16));
    }
  }
  const ports: number[] = [];
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
        if (inode && listening.has(inode)) ports.push(listening.get(inode)!);
      } catch {
        // The fd closed while we looked.
      }
    }
  }
  return ports;
}

describe("local connect server (Proxy stand-in)", function () {
  this.timeout(60_000);

  let stack: LocalStack;
  let connect: ConnectServer;
  let home: string;
  let pageServer: Server;
  let pageUrl: string;
  let bb: Browserbase;
  let other: Browserbase;
  let otherProject: string;
  let tokenKeys: TokenKeySet;
  let stopped = false;
  const logger = createMemoryLogger();

  const tokenOptions = () => ({
    issuer: stack.runtime.config.tokenIssuer,
    audience: stack.runtime.config.tokenAudience,
  });
  const connectUrlFor = (sessionId: string, token: string) =>
    `ws://${stack.runtime.config.connectHost}/v1/sessions/${sessionId}/connect?signingKey=${token}`;
  /** The session's score in the project's `active` set: null once its slot is freed. */
  const activeSlot = async (sessionId: string) =>
    (await stack.runtime.redis()).zscore(keys.active("local"), sessionId);
  /** Every event published on wc:session-events from now on, read on a connection of its own. */
  const watchEvents = async () => {
    const subscriber = new Redis((await sharedRedis()).url);
    const events: { type: string; sessionId: string; projectId: string; at: number }[] = [];
    subscriber.on("message", (_channel: string, message: string) => events.push(JSON.parse(message)));
    await subscriber.subscribe(SESSION_EVENTS_CHANNEL);
    return { events, stop: () => subscriber.disconnect() };
  };

  before(async () => {
    const browserPath = requireChromium();
    const fresh = newStackHome("wc-connect-test-");
    home = fresh.home;
    const file = fresh.secretsFile;
    const localKey = mintFirstKey(file)!.apiKey;
    otherProject = `other-${randomUUID().slice(0, 8)}`;
    const otherKey = generateApiKey(otherProject);
    addApiKeyEntry(file, otherKey.entry);
    tokenKeys = readSecrets(file).tokenKeys;

    stack = await startLocalStack({
      home,
      port: 0,
      connectPort: 0,
      redisUrl: (await sharedRedis()).url,
      logger,
      chromiumPath: browserPath,
    });
    connect = stack.connect!;
    connect.disconnectGraceMs = GRACE_MS;
    bb = new Browserbase({ apiKey: localKey, baseURL: stack.url });
    other = new Browserbase({ apiKey: otherKey.key, baseURL: stack.url });

    pageServer = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(`<!doctype html><html><head><title>${PAGE_TITLE}</title></head><body>hello</body></html>`);
    });
    await new Promise<void>((resolve) => pageServer.listen(0, "127.0.0.1", () => resolve()));
    pageUrl = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}/page`;
  });

  after(async () => {
    if (stack && !stopped) await stack.stop();
    if (pageServer) await new Promise<void>((resolve) => pageServer.close(() => resolve()));
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it("lets Playwright connect to an SDK-created session, browse a loopback page, list it in debug, and reconnect to the same browser", async () => {
    const session = await bb.sessions.create({ api_timeout: 300, keepAlive: true });
    expect(session.connectUrl).to.equal(connectUrlFor(session.id, session.signingKey));

    const first = await chromium.connectOverCDP(session.connectUrl);
    const context = first.contexts()[0];
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(pageUrl);
    expect(await page.title()).to.equal(PAGE_TITLE);

    // The debug route's page list comes from this session's browser.
    const debug = await bb.sessions.debug(session.id);
    const listed = debug.pages.find((entry) => entry.url === pageUrl);
    expect(listed, JSON.stringify(debug.pages)).to.include({ title: PAGE_TITLE });
    expect(listed!.debuggerUrl).to.contain(`pageId=${encodeURIComponent(listed!.id)}`);
    expect(await connect.pages(otherProject, session.id)).to.deep.equal([]);

    const browser = await connect.browserOf(session.id);
    await first.close(); // disconnects; the session's browser keeps running
    expect(alive(browser!.pid)).to.equal(true);

    const second = await chromium.connectOverCDP(session.connectUrl);
    const urls = second.contexts().flatMap((ctx) => ctx.pages().map((open) => open.url()));
    expect(urls).to.include(pageUrl);
    expect((await connect.browserOf(session.id))!.pid).to.equal(browser!.pid);
    expect(connect.launched.filter((entry) => entry.sessionId === session.id)).to.have.length(1);
    await second.close();

    await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });
    await waitFor("the released session's browser to exit", () => !alive(browser!.pid));
  });

  it("keeps the machine's files from the session's browser: no file: URL through CDP, and no local paths for file inputs", async () => {
    const session = await bb.sessions.create({ api_timeout: 120 });
    const cdp = await rawCdp(session.connectUrl);
    try {
      const secrets = secretsPath(home);
      const refused = /file: URLs are not allowed/;
      const created = await cdp.send("Target.createTarget", { url: `file://${secrets}` });
      expect(created.error?.message).to.match(refused);

      const target = await cdp.send("Target.createTarget", { url: pageUrl });
      expect(target.error, JSON.stringify(target)).to.equal(undefined);
      const result = target.result;
      const attached = await cdp.send("Target.attachToTarget", { targetId: result!.targetId, flatten: true });
      const sessionId = attached.result!.sessionId as string;
      for (const url of [`file://${secrets}`, "FILE:///etc/passwd", ` view-source:file://${secrets}`]) {
        const navigated = await cdp.send("Page.navigate", { url }, sessionId);
        expect(navigated.error?.message, url).to.match(refused);
      }
      // Wait until the loopback page has loaded (an evaluate during navigation has no context yet).
      await waitFor("the page to load", async () => {
        const state = await cdp.send(
          "Runtime.evaluate",
          { expression: "location.href + ' ' + document.readyState", returnByValue: true },
          sessionId,
        );
        return (state.result?.result as { value?: string } | undefined)?.value === `${pageUrl} complete`;
      });
      // The page itself cannot reach them either (Chromium refuses file: from a web page).
      const fetched = await cdp.send(
        "Runtime.evaluate",
        {
          expression: `fetch(${JSON.stringify(`file://${secrets}`)}).then(r => r.text(), e => "refused: " + e.message)`,
          awaitPromise: true,
          returnByValue: true,
        },
        sessionId,
      );
      expect((fetched.result!.result as { value: string }).value).to.match(/^refused: /);
      const body = await cdp.send(
        "Runtime.evaluate",
        { expression: "document.documentElement.outerHTML", returnByValue: true },
        sessionId,
      );
      expect((body.result!.result as { value: string }).value).to.not.include("tokenKeys");

      const files = await cdp.send(
        "DOM.setFileInputFiles",
        { files: [secrets], backendNodeId: 1 },
        sessionId,
      );
      // Only files uploaded to the session through the API may be named, never this machine's.
      expect(files.error?.message).to.match(/may name only files uploaded to the session/);
      // A command for a session this client never attached is refused as unknown.
      const foreign = await cdp.send(
        "Runtime.evaluate",
        { expression: "1" },
        "0123456789ABCDEF0123456789ABCDEF",
      );
      expect(foreign.error?.message).to.match(/not found/);
    } finally {
      cdp.close();
      await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });
    }
  });

  it("opens no DevTools port: the browser speaks CDP over a pipe, and none of its processes listens on TCP", async () => {
    const session = await bb.sessions.create({ api_timeout: 120, keepAlive: true });
    const cdp = await rawCdp(session.connectUrl);
    try {
      const browser = (await connect.browserOf(session.id))!;
      const cmdline = readFileSync(`/proc/${browser.pid}/cmdline`, "utf8").split("\0");
      expect(cmdline).to.include("--remote-debugging-pipe");
      expect(cmdline.some((arg) => arg.startsWith("--remote-debugging-port"))).to.equal(false);
      expect(existsSync(join(browser.profileDir, "DevToolsActivePort"))).to.equal(false);
      const members = groupMembers([browser.pid]);
      expect(members).to.include(browser.pid);
      expect(listeningPorts(members), "TCP ports the browser's processes listen on").to.deep.equal([]);
      // The relay still works over the pipe.
      const version = await cdp.send("Browser.getVersion");
      expect(version.result?.product).to.match(/Chrome\//);
    } finally {
      cdp.close();
      await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });
    }
  });

  it("refuses another project's token with 401 and a token naming another project with 404", async () => {
    const mine = await bb.sessions.create({ api_timeout: 120 });
    const theirs = await other.sessions.create({ api_timeout: 120 });

    const swapped = await upgrade(connectUrlFor(mine.id, theirs.signingKey));
    expect(swapped.status).to.equal(401);
    expect(swapped.body.message).to.match(/another session/);

    // A genuine token for this session id but another project finds no such session there.
    const now = Math.floor(Date.now() / 1000);
    const forged = await mintSessionToken(
      tokenKeys,
      {
        sessionId: mine.id,
        projectId: otherProject,
        principalId: "prn_other",
        scope: "connect",
        expiresAt: now + 120,
        now,
      },
      tokenOptions(),
    );
    const crossProject = await upgrade(connectUrlFor(mine.id, forged));
    expect(crossProject.status).to.equal(404);
    expect(crossProject.body.message).to.equal(`session ${mine.id} not found`);

    const unknownId = randomUUID();
    const unknown = await mintSessionToken(
      tokenKeys,
      {
        sessionId: unknownId,
        projectId: "local",
        principalId: "prn_x",
        scope: "connect",
        expiresAt: now + 60,
        now,
      },
      tokenOptions(),
    );
    expect((await upgrade(connectUrlFor(unknownId, unknown))).status).to.equal(404);
    expect(connect.liveSessionIds()).to.not.include(mine.id);

    await bb.sessions.update(mine.id, { status: "REQUEST_RELEASE" });
    await other.sessions.update(theirs.id, { status: "REQUEST_RELEASE" });
  });

  it("refuses a tampered, a missing and a debug-scoped token with 401", async () => {
    const session = await bb.sessions.create({ api_timeout: 120 });
    const parts = session.signingKey.split(".");
    const ciphertext = parts[3];
    const middle = Math.floor(ciphertext.length / 2);
    parts[3] =
      ciphertext.slice(0, middle) + (ciphertext[middle] === "A" ? "B" : "A") + ciphertext.slice(middle + 1);
    const tampered = await upgrade(connectUrlFor(session.id, parts.join(".")));
    expect(tampered.status).to.equal(401);
    expect(tampered.body.message).to.match(/^signingKey was refused/);

    const missing = await upgrade(
      `ws://${stack.runtime.config.connectHost}/v1/sessions/${session.id}/connect`,
    );
    expect(missing.status).to.equal(401);
    expect(missing.body.message).to.match(/signingKey is missing/);

    const debugUrls = await bb.sessions.debug(session.id);
    const debugToken = new URL(debugUrls.wsUrl).searchParams.get("signingKey")!;
    expect((await upgrade(connectUrlFor(session.id, debugToken))).status).to.equal(401);

    // Playwright users see the status in the error.
    let message = "";
    await chromium
      .connectOverCDP(connectUrlFor(session.id, parts.join(".")), { timeout: 5000 })
      .catch((error) => {
        message = String(error.message);
      });
    expect(message).to.match(/401/);
    await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });
  });

  it("refuses a timed-out session with 410, whether or not its token has expired too", async () => {
    const session = await bb.sessions.create({ api_timeout: 120 });
    // Move the session's end into the past, as if its timeout had passed.
    const redis = await stack.runtime.redis();
    const past = Date.now() - 1000;
    await redis.hset(keys.session("local", session.id), "expiresAt", String(past));

    const withLiveToken = await upgrade(session.connectUrl);
    expect(withLiveToken.status).to.equal(410);
    expect(withLiveToken.body.message).to.match(/timed out/);

    const now = Math.floor(Date.now() / 1000);
    const expiredToken = await mintSessionToken(
      tokenKeys,
      {
        sessionId: session.id,
        projectId: "local",
        principalId: "prn_x",
        scope: "connect",
        expiresAt: now - 60,
        now: now - 180,
      },
      tokenOptions(),
    );
    const withExpiredToken = await upgrade(connectUrlFor(session.id, expiredToken));
    expect(withExpiredToken.status).to.equal(410);
    expect(withExpiredToken.body.message).to.match(/timed out/);
    expect(connect.liveSessionIds()).to.not.include(session.id);
  });

  it("refuses a released session with 410", async () => {
    const session = await bb.sessions.create({ api_timeout: 120 });
    await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });
    const refused = await upgrade(session.connectUrl);
    expect(refused.status).to.equal(410);
    expect(refused.body.message).to.match(/was released/);
  });

  it("closes a connected client with 'session released' on release, ends the browser and removes its profile", async () => {
    const session = await bb.sessions.create({ api_timeout: 300 });
    const client = await cdpClient(session.connectUrl);
    const version = await client.send("Browser.getVersion");
    expect(String(version.product)).to.match(/Chrome/);
    const playwright = await chromium.connectOverCDP(session.connectUrl);
    const playwrightGone = new Promise<void>((resolve) => playwright.on("disconnected", () => resolve()));
    const browser = (await connect.browserOf(session.id))!;
    expect(alive(browser.pid)).to.equal(true);
    expect(existsSync(browser.profileDir)).to.equal(true);

    await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });
    expect(await client.closed).to.deep.equal(CLOSE.released);
    await playwrightGone;
    await waitFor("the browser process to exit", () => !alive(browser.pid));
    await waitFor("the profile folder to go", () => !existsSync(browser.profileDir));
    expect(processesMentioning([browser.profileDir])).to.deep.equal([]);
    expect(connect.liveSessionIds()).to.not.include(session.id);
  });

  it("closes a connected client with 'session timed out' when expiresAt passes", async () => {
    // The API's shortest timeout is 60 s; write a short session straight to the store instead. It
    // lives 6 s (a whole second, as the API's are), so the connect is done before it ends even
    // when a busy machine starts the browser three times slower than usual.
    const now = Date.now();
    const id = randomUUID();
    const expiresAt = Math.ceil((now + 6000) / 1000) * 1000;
    const created = await stack.runtime.store.create({
      record: {
        id,
        projectId: "local",
        principalId: "prn_test",
        status: "RUNNING",
        createdAt: now,
        updatedAt: now,
        startedAt: now,
        expiresAt,
        timeoutSeconds: 6,
        keepAlive: false,
        region: "local",
        proxyBytes: 0,
      },
      limit: 100,
      now,
      retentionMs: 60_000,
      maxLifetimeMs: 21_600_000,
    });
    expect(created.kind).to.equal("created");
    const token = await mintSessionToken(
      tokenKeys,
      {
        sessionId: id,
        projectId: "local",
        principalId: "prn_test",
        scope: "connect",
        expiresAt: expiresAt / 1000,
        now: Math.floor(now / 1000),
      },
      tokenOptions(),
    );
    const client = await cdpClient(connectUrlFor(id, token));
    const browser = (await connect.browserOf(id))!;
    expect(await client.closed).to.deep.equal(CLOSE.timedOut);
    expect(Date.now()).to.be.at.least(expiresAt);
    await waitFor("the browser process to exit", () => !alive(browser.pid));
    expect(existsSync(browser.profileDir)).to.equal(false);
  });

  it("marks the session ERROR and closes the client when its browser crashes", async () => {
    const session = await bb.sessions.create({ api_timeout: 300 });
    const client = await cdpClient(session.connectUrl);
    const browser = (await connect.browserOf(session.id))!;
    process.kill(browser.pid, "SIGKILL");
    expect(await client.closed).to.deep.equal(CLOSE.failed);
    await waitFor("the session to be marked ERROR", async () => {
      return (await bb.sessions.retrieve(session.id)).status === "ERROR";
    });
    await waitFor("the profile folder to go", () => !existsSync(browser.profileDir));
    const refused = await upgrade(session.connectUrl);
    expect(refused.status).to.equal(410);
    expect(refused.body.message).to.match(/ended with an error/);
  });

  it("releases a session without keepAlive when its last client disconnects: COMPLETED, slot freed, browser ended, reconnect refused with 410", async () => {
    const watch = await watchEvents();
    try {
      const session = await bb.sessions.create({ api_timeout: 300, keepAlive: false });
      expect(session.keepAlive).to.equal(false);
      const raw = await cdpClient(session.connectUrl);
      const playwright = await chromium.connectOverCDP(session.connectUrl);
      const context = playwright.contexts()[0];
      const page = context.pages()[0] ?? (await context.newPage());
      await page.goto(pageUrl);
      const browser = (await connect.browserOf(session.id))!;
      expect(await activeSlot(session.id)).to.not.equal(null);

      // One client dropping its socket (no close frame) is not the last disconnect.
      raw.socket.terminate();
      await raw.closed;
      await sleep(GRACE_MS * 3);
      expect((await bb.sessions.retrieve(session.id)).status).to.equal("RUNNING");
      expect(alive(browser.pid)).to.equal(true);

      const before = Date.now();
      await playwright.close();
      await waitFor("the session to be COMPLETED", async () => {
        return (await bb.sessions.retrieve(session.id)).status === "COMPLETED";
      });
      const ended = await bb.sessions.retrieve(session.id);
      expect(ended.endedAt, "endedAt").to.be.a("string");
      expect(Date.parse(ended.endedAt!)).to.be.at.least(before + GRACE_MS - 50);
      expect(await activeSlot(session.id), "the session's slot in active").to.equal(null);
      await waitFor("the browser process to exit", () => !alive(browser.pid));
      await waitFor("the profile folder to go", () => !existsSync(browser.profileDir));
      expect(groupMembers([browser.pid]), "processes left in the browser's group").to.deep.equal([]);
      expect(connect.liveSessionIds()).to.not.include(session.id);

      const refused = await upgrade(session.connectUrl);
      expect(refused.status).to.equal(410);
      expect(refused.body.message).to.match(/was released/);

      // Released once: one event, one browser, stopped once.
      await sleep(GRACE_MS);
      const released = watch.events.filter((event) => event.sessionId === session.id);
      expect(released).to.deep.equal([
        { type: "released", sessionId: session.id, projectId: "local", at: released[0]?.at },
      ]);
      expect(connect.launched.filter((entry) => entry.sessionId === session.id)).to.have.length(1);
      const stoppedLines = logger.lines.filter(
        (line) => line.message === "browser stopped" && line.extra?.sessionId === session.id,
      );
      expect(stoppedLines).to.have.length(1);
    } finally {
      watch.stop();
    }
  });

  it("keeps a session without keepAlive when its client reconnects within the grace period", async () => {
    connect.disconnectGraceMs = 1500;
    try {
      const session = await bb.sessions.create({ api_timeout: 300 });
      const first = await cdpClient(session.connectUrl);
      const browser = (await connect.browserOf(session.id))!;
      first.socket.close();
      await first.closed;
      const second = await cdpClient(session.connectUrl);
      await sleep(connect.disconnectGraceMs + 500);
      expect((await bb.sessions.retrieve(session.id)).status).to.equal("RUNNING");
      expect((await connect.browserOf(session.id))!.pid).to.equal(browser.pid);
      expect(String((await second.send("Browser.getVersion")).product)).to.match(/Chrome/);

      connect.disconnectGraceMs = GRACE_MS;
      second.socket.close();
      await waitFor("the session to be COMPLETED", async () => {
        return (await bb.sessions.retrieve(session.id)).status === "COMPLETED";
      });
      await waitFor("the browser process to exit", () => !alive(browser.pid));
    } finally {
      connect.disconnectGraceMs = GRACE_MS;
    }
  });

  it("keeps a keepAlive session RUNNING with its browser across disconnects, and a reconnect reuses that browser", async () => {
    const session = await bb.sessions.create({ api_timeout: 300, keepAlive: true });
    expect(session.keepAlive).to.equal(true);
    const first = await chromium.connectOverCDP(session.connectUrl);
    const context = first.contexts()[0];
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(pageUrl);
    const browser = (await connect.browserOf(session.id))!;
    await first.close();
    const raw = await cdpClient(session.connectUrl);
    raw.socket.terminate(); // a dropped socket, too
    await raw.closed;

    await sleep(GRACE_MS * 4);
    const retrieved = await bb.sessions.retrieve(session.id);
    expect(retrieved.status).to.equal("RUNNING");
    expect(retrieved.endedAt).to.equal(undefined);
    expect(await activeSlot(session.id)).to.not.equal(null);
    expect(alive(browser.pid)).to.equal(true);
    expect(connect.liveSessionIds()).to.include(session.id);

    const second = await chromium.connectOverCDP(session.connectUrl);
    const urls = second.contexts().flatMap((ctx) => ctx.pages().map((open) => open.url()));
    expect(urls).to.include(pageUrl);
    expect((await connect.browserOf(session.id))!.pid).to.equal(browser.pid);
    expect(connect.launched.filter((entry) => entry.sessionId === session.id)).to.have.length(1);
    await second.close();

    await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });
    await waitFor("the released session's browser to exit", () => !alive(browser.pid));
  });

  it("without a browser binary, serves the API and refuses connects with 503 saying how to install Chromium", async () => {
    const bare = await startLocalStack({
      home: mkdtempSync(join(tmpdir(), "wc-connect-nobrowser-")),
      port: 0,
      connectPort: 0,
      redisUrl: (await sharedRedis()).url,
      logger: createMemoryLogger(),
      chromiumPath: "/nonexistent/chromium",
    });
    try {
      expect(bare.connect!.browserAvailable).to.equal(false);
      const client = new Browserbase({ apiKey: bare.firstApiKey!, baseURL: bare.url });
      const session = await client.sessions.create({ api_timeout: 60 });
      const refused = await upgrade(session.connectUrl);
      expect(refused.status).to.equal(503);
      expect(refused.body.message).to.contain("apt-get install -y chromium");
      await client.sessions.update(session.id, { status: "REQUEST_RELEASE" });
    } finally {
      await bare.stop();
      rmSync(bare.home, { recursive: true, force: true });
    }
  });

  it("leaves no browser process and no profile folder behind once the stack stops", async () => {
    // A live session with a connected client at shutdown must be cleaned up too.
    const session = await bb.sessions.create({ api_timeout: 300 });
    const client = await cdpClient(session.connectUrl);
    expect(connect.launched.length).to.be.at.least(4);

    await stack.stop();
    stopped = true;
    expect(await client.closed).to.deep.equal(CLOSE.shutdown);
    // The server's own close is not a client's disconnect: the session (no keepAlive) is not released.
    await sleep(GRACE_MS * 2);
    const redis = new Redis((await sharedRedis()).url);
    try {
      expect(await redis.hget(keys.session("local", session.id), "status")).to.equal("RUNNING");
    } finally {
      redis.disconnect();
    }
    const pids = connect.launched.map((entry) => entry.pid);
    const profiles = connect.launched.map((entry) => entry.profileDir);
    expect(pids.filter(alive), "browser pids still alive").to.deep.equal([]);
    expect(groupMembers(pids), "processes left in the browsers' process groups").to.deep.equal([]);
    expect(processesMentioning(profiles), "processes using a session profile").to.deep.equal([]);
    expect(
      profiles.filter((dir) => existsSync(dir)),
      "profile folders left",
    ).to.deep.equal([]);
  });
});
