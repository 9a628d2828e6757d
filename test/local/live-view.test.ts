import { rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { inflateSync } from "node:zlib";
import Browserbase from "@browserbasehq/sdk";
import { expect } from "chai";
import { chromium, type Browser, type Page } from "playwright-core";
import { createMemoryLogger } from "../../lib/logger";
import { mintSessionToken, type TokenKeySet } from "../../lib/tokens";
import { liveViewFrameAncestors, viewerHeaders } from "../../local/connect/live-view";
import { CLOSE, type ConnectServer } from "../../local/connect/server";
import { mintFirstKey, readSecrets } from "../../local/secrets-file";
import { startLocalStack, type LocalStack } from "../../local/stack";
import { rawCdp, upgrade } from "../support/cdp";
import { sharedRedis } from "../support/redis";
import { newStackHome, requireChromium } from "../support/browser";

/** The session page's background: a colour nothing else on screen has. */
const COLOUR = { r: 0x14, g: 0xc8, b: 0x78 };
/** The session page's viewport, and the live view's (wider: the picture is letterboxed 100 px each side). */
const PAGE_VIEWPORT = { width: 800, height: 600 };
const VIEWER_VIEWPORT = { width: 1000, height: 600 };
const LETTERBOX = (VIEWER_VIEWPORT.width - PAGE_VIEWPORT.width) / 2;
/** The text input's centre on the session page (it covers 40% x 30% from the page's centre). */
const FIELD_CENTRE = { x: PAGE_VIEWPORT.width * 0.7, y: PAGE_VIEWPORT.height * 0.65 };
/** The release grace period in these tests. */
const GRACE_MS = 300;
/** Bound on event-driven waits (a frame, a value): generous for a machine three times slower. */
const WAIT_MS = 30_000;

/** The page the session shows: the distinctive colour (or another), a text input, and where the last click landed. */
const sessionPage = (
  background = `rgb(${COLOUR.r},${COLOUR.g},${COLOUR.b})`,
) => `<!doctype html><html><head><title>Live view target</title><style>
html,body{margin:0;height:100%;background:${background}}
#field{position:fixed;left:50%;top:50%;width:40%;height:30%;box-sizing:border-box;border:0;font-size:32px;background:#fff}
</style></head><body><input id="field" autocomplete="off"><script>
window.pointer = null;
addEventListener("mousedown", (event) => { window.pointer = { x: event.clientX, y: event.clientY }; });
</script></body></html>`;

/** Polls `check` every 50 ms until it holds or `timeoutMs` passes. */
async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = WAIT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The URL with its `signingKey` replaced. */
function withToken(url: string, token: string): string {
  const changed = new URL(url);
  changed.searchParams.set("signingKey", token);
  return changed.toString();
}

/**
 * An 8-bit RGB or RGBA PNG (what Chromium's screenshots are), decoded to its pixels. Just enough
 * of PNG for that: no palette, no interlacing, no 16-bit samples.
 */
function decodePng(png: Buffer): { width: number; height: number; pixel(x: number, y: number): number[] } {
  let offset = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const data: Buffer[] = [];
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString("ascii", offset + 4, offset + 8);
    const body = png.subarray(offset + 8, offset + 8 + length);
    if (type === "IHDR") {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      const [depth, colourType, , , interlace] = body.subarray(8, 13);
      if (depth !== 8 || interlace !== 0 || (colourType !== 2 && colourType !== 6))
        throw new Error(
          `unsupported PNG (depth ${depth}, colour type ${colourType}, interlace ${interlace})`,
        );
      channels = colourType === 6 ? 4 : 3;
    } else if (type === "IDAT") data.push(body);
    offset += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(data));
  const stride = width * channels;
  const pixels = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const left = i >= channels ? pixels[y * stride + i - channels] : 0;
      const up = y > 0 ? pixels[(y - 1) * stride + i] : 0;
      const upLeft = y > 0 && i >= channels ? pixels[(y - 1) * stride + i - channels] : 0;
      let predicted = 0;
      if (filter === 1) predicted = left;
      else if (filter === 2) predicted = up;
      else if (filter === 3) predicted = (left + up) >> 1;
      else if (filter === 4) {
        const p = left + up - upLeft;
        const [pa, pb, pc] = [Math.abs(p - left), Math.abs(p - up), Math.abs(p - upLeft)];
        predicted = pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft;
      }
      pixels[y * stride + i] = (line[i] + predicted) & 0xff;
    }
  }
  return {
    width,
    height,
    pixel: (x, y) => [...pixels.subarray(y * stride + x * channels, y * stride + x * channels + 3)],
  };
}

/** True when `rgb` is the session page's colour, give or take what JPEG does to it. */
function isSessionColour([r, g, b]: number[]): boolean {
  return Math.abs(r - COLOUR.r) <= 24 && Math.abs(g - COLOUR.g) <= 24 && Math.abs(b - COLOUR.b) <= 24;
}

describe("live view (the session's debug URLs on the local connect server)", function () {
  this.timeout(120_000);

  let stack: LocalStack;
  let connect: ConnectServer;
  let home: string;
  let pageServer: Server;
  let pageUrl: string;
  let embedUrl: string;
  /** What the embedding page's iframe shows. */
  let embedSrc = "about:blank";
  let bb: Browserbase;
  let tokenKeys: TokenKeySet;
  /** A second browser, the person watching: the system Chromium, launched by Playwright. */
  let viewer: Browser;
  const logger = createMemoryLogger();

  const tokenOptions = () => ({
    issuer: stack.runtime.config.tokenIssuer,
    audience: stack.runtime.config.tokenAudience,
  });
  /** A debug token for `sessionId` that expired a minute ago. */
  const expiredDebugToken = async (sessionId: string) => {
    const now = Math.floor(Date.now() / 1000);
    return mintSessionToken(
      tokenKeys,
      {
        sessionId,
        projectId: "local",
        principalId: "prn_x",
        scope: "debug",
        expiresAt: now - 60,
        now: now - 180,
      },
      tokenOptions(),
    );
  };

  /** A session that Playwright has connected to, showing the test page at PAGE_VIEWPORT. */
  async function connectedSession(options: { keepAlive?: boolean } = {}) {
    const session = await bb.sessions.create({ api_timeout: 300, keepAlive: options.keepAlive ?? true });
    const browser = await chromium.connectOverCDP(session.connectUrl);
    const context = browser.contexts()[0];
    const page = context.pages()[0] ?? (await context.newPage());
    await page.setViewportSize(PAGE_VIEWPORT);
    await page.goto(pageUrl);
    return { session, browser, page };
  }

  /** Opens a live view URL in the viewer's browser and waits for its first frame to be shown. */
  async function openLiveView(url: string): Promise<Page> {
    const page = await viewer.newPage({ viewport: VIEWER_VIEWPORT });
    const response = await page.goto(url);
    expect(response?.status()).to.equal(200);
    try {
      await page.waitForSelector("html[data-state=live]", { timeout: WAIT_MS });
    } catch (error) {
      // Say what the page itself said (its status and message), not only that it timed out.
      const state = await page.getAttribute("html", "data-state");
      const message = await page.textContent("#message");
      throw new Error(`the live view showed no frame: data-state ${state}, "${message}"`, { cause: error });
    }
    return page;
  }

  before(async () => {
    const browserPath = requireChromium();
    const fresh = newStackHome("wc-live-view-test-");
    home = fresh.home;
    const file = fresh.secretsFile;
    const apiKey = mintFirstKey(file)!.apiKey;
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
    bb = new Browserbase({ apiKey, baseURL: stack.url });

    pageServer = createServer((req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      if (req.url === "/embed") {
        // The embed snippet the docs give, as a team's app would have it.
        const src = embedSrc.replace(/&/g, "&amp;").replace(/"/g, "&quot;");
        res.end(
          `<!doctype html><html><body style="margin:0"><iframe src="${src}" width="${VIEWER_VIEWPORT.width}" height="${VIEWER_VIEWPORT.height}" ` +
            `style="border:0" sandbox="allow-same-origin allow-scripts" allow="clipboard-read; clipboard-write"></iframe></body></html>`,
        );
      } else res.end(sessionPage(req.url?.endsWith("?red") ? "rgb(200,30,30)" : undefined));
    });
    await new Promise<void>((resolve) => pageServer.listen(0, "127.0.0.1", () => resolve()));
    const origin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;
    pageUrl = `${origin}/page`;
    embedUrl = `${origin}/embed`;

    viewer = await chromium.launch({ executablePath: browserPath });
  });

  after(async () => {
    await viewer?.close();
    if (stack) await stack.stop();
    if (pageServer) await new Promise<void>((resolve) => pageServer.close(() => resolve()));
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it("shows the session's page in the fullscreen live view, and what a person types there reaches the page", async () => {
    const { session, browser, page } = await connectedSession();
    try {
      const debug = await bb.sessions.debug(session.id);
      const live = await openLiveView(debug.debuggerFullscreenUrl);
      expect(await live.locator("#bar").count(), "a toolbar in fullscreen").to.equal(0);

      // The picture is the session's page: its colour where the page is, the viewer's own beside it.
      const shot = decodePng(await live.screenshot());
      expect([shot.width, shot.height]).to.deep.equal([VIEWER_VIEWPORT.width, VIEWER_VIEWPORT.height]);
      const inPage = shot.pixel(LETTERBOX + 200, 150);
      expect(isSessionColour(inPage), `pixel inside the picture: ${inPage}`).to.equal(true);
      const beside = shot.pixel(LETTERBOX / 2, 300);
      expect(isSessionColour(beside), `pixel beside the picture: ${beside}`).to.equal(false);

      // A click over the input lands on the input, at the same place in the page's own coordinates.
      await live.mouse.click(LETTERBOX + FIELD_CENTRE.x, FIELD_CENTRE.y);
      await waitFor("the click to reach the session's page", async () => {
        return (await page.evaluate("window.pointer")) !== null;
      });
      const pointer = (await page.evaluate("window.pointer")) as { x: number; y: number };
      expect(pointer.x).to.be.closeTo(FIELD_CENTRE.x, 2);
      expect(pointer.y).to.be.closeTo(FIELD_CENTRE.y, 2);

      // Printable keys, a key without text (Backspace) and Shift all arrive, in order.
      await live.keyboard.type("Hellp");
      await live.keyboard.press("Backspace");
      await live.keyboard.type("o, live view!");
      await waitFor("the typed text in the session's input", async () => {
        // page.evaluate, not a locator: Playwright's locators do not find elements over this relay yet.
        return (await page.evaluate(`document.getElementById("field").value`)) === "Hello, live view!";
      });

      // The picture follows the page, across a navigation too: the next page is red, and soon the live view.
      const framesBefore = Number(await live.getAttribute("html", "data-frames"));
      expect(framesBefore).to.be.at.least(1);
      await page.goto(`${pageUrl}?red`);
      await waitFor("the live view to show the page's new colour", async () => {
        const [r, g, b] = decodePng(await live.screenshot()).pixel(LETTERBOX + 200, 150);
        return r > 150 && g < 80 && b < 80;
      });
      expect(Number(await live.getAttribute("html", "data-frames"))).to.be.above(framesBefore);

      // A resized live view asks for frames of its new size, and the picture still follows the page.
      const wider = { width: 1200, height: 600 };
      await live.setViewportSize(wider);
      await page.goto(pageUrl);
      await waitFor("the resized live view to show the page", async () => {
        const shot = decodePng(await live.screenshot());
        return (
          shot.width === wider.width &&
          isSessionColour(shot.pixel((wider.width - PAGE_VIEWPORT.width) / 2 + 200, 150))
        );
      });
      await live.close();
    } finally {
      await browser.close();
      await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });
    }
  });

  it("serves the page embeddable in an iframe on another origin, with no-store, no referrer and no token in the HTML", async () => {
    const { session, browser } = await connectedSession();
    try {
      const debug = await bb.sessions.debug(session.id);
      const token = new URL(debug.debuggerUrl).searchParams.get("signingKey")!;
      const response = await fetch(debug.debuggerUrl);
      expect(response.status).to.equal(200);
      expect(response.headers.get("content-type")).to.match(/^text\/html/);
      expect(response.headers.get("x-frame-options")).to.equal(null);
      expect(response.headers.get("content-security-policy")).to.match(/(^|; )frame-ancestors \*($|;)/);
      expect(response.headers.get("content-security-policy")).to.match(/default-src 'none'/);
      expect(response.headers.get("referrer-policy")).to.equal("no-referrer");
      expect(response.headers.get("cache-control")).to.equal("no-store");
      const html = await response.text();
      expect(html).to.contain("<script>");
      expect(html).to.not.contain(token);
      expect(html).to.contain('id="bar"'); // not fullscreen: the toolbar is there

      embedSrc = debug.debuggerUrl;
      const embedding = await viewer.newPage({ viewport: VIEWER_VIEWPORT });
      try {
        await embedding.goto(embedUrl);
        const frame = embedding.frameLocator("iframe");
        await frame.locator("html[data-state=live]").waitFor({ state: "attached", timeout: WAIT_MS });
        const frames = Number(await frame.locator("html").getAttribute("data-frames"));
        expect(frames).to.be.at.least(1);
        // The toolbar names the page the live view shows.
        expect(await frame.locator("#where").textContent()).to.contain(pageUrl);
      } finally {
        await embedding.close();
      }
    } finally {
      await browser.close();
      await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });
    }
  });

  it("shows the page a pageId names", async () => {
    const { session, browser, page } = await connectedSession();
    try {
      const second = await page.context().newPage();
      await second.setViewportSize(PAGE_VIEWPORT);
      await second.setContent(`<html><body style="margin:0;background:rgb(30,30,220)"></body></html>`);
      const debug = await bb.sessions.debug(session.id);
      const green = debug.pages.find((entry) => entry.url === pageUrl);
      const blue = debug.pages.find((entry) => entry.url !== pageUrl);
      expect(debug.pages, JSON.stringify(debug.pages)).to.have.length(2);
      for (const [entry, expected] of [
        [green!, (rgb: number[]) => isSessionColour(rgb)],
        [blue!, ([r, g, b]: number[]) => b > 150 && r < 80 && g < 80],
      ] as const) {
        const live = await openLiveView(entry.debuggerFullscreenUrl);
        expect(await live.locator("#where").count()).to.equal(0);
        const pixel = decodePng(await live.screenshot()).pixel(LETTERBOX + 200, 150);
        expect(expected(pixel), `pixel of ${entry.url}: ${pixel}`).to.equal(true);
        await live.close();
      }
    } finally {
      await browser.close();
      await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });
    }
  });

  it("tells the person watching when the session ends", async () => {
    const { session, browser } = await connectedSession();
    try {
      const debug = await bb.sessions.debug(session.id);
      const live = await openLiveView(debug.debuggerUrl);
      expect(await live.textContent("#status")).to.equal("Live");
      await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });
      await live.waitForSelector("html[data-state=closed]", { state: "attached", timeout: WAIT_MS });
      expect(await live.textContent("#message")).to.equal("The live view ended: session released.");
      await live.close();
    } finally {
      await browser.close();
    }
  });

  it("refuses a connect token, an expired debug token and another session's debug token, on the page and the WebSocket", async () => {
    const { session, browser } = await connectedSession();
    const otherSession = await bb.sessions.create({ api_timeout: 120 });
    try {
      const debug = await bb.sessions.debug(session.id);
      const otherDebug = await bb.sessions.debug(otherSession.id);
      const otherToken = new URL(otherDebug.wsUrl).searchParams.get("signingKey")!;
      const expired = await expiredDebugToken(session.id);
      const cases = [
        { token: session.signingKey, message: /^signingKey was refused: .*scope/ },
        { token: expired, message: /^signingKey was refused: token has expired/ },
        { token: otherToken, message: /^signingKey was refused: .*another session/ },
      ];
      for (const { token, message } of cases) {
        const page = await fetch(withToken(debug.debuggerUrl, token));
        expect(page.status).to.equal(401);
        expect(page.headers.get("cache-control")).to.equal("no-store");
        expect(page.headers.get("referrer-policy")).to.equal("no-referrer");
        const html = await page.text();
        expect(html).to.not.contain("<script");
        expect(html).to.match(/401 Unauthorized: signingKey was refused/);

        const asJson = await fetch(withToken(debug.debuggerFullscreenUrl, token), {
          headers: { accept: "application/json" },
        });
        expect(asJson.status).to.equal(401);
        const body = (await asJson.json()) as { statusCode: number; error: string; message: string };
        expect(body).to.include({ statusCode: 401, error: "Unauthorized" });
        expect(body.message).to.match(message);

        const socket = await upgrade(withToken(debug.wsUrl, token));
        expect(socket.status).to.equal(401);
        expect(socket.body).to.include({ statusCode: 401, error: "Unauthorized" });
        expect(socket.body.message).to.match(message);
      }
      const missing = await fetch(debug.debuggerUrl.replace(/\?.*$/, ""));
      expect(missing.status).to.equal(401);
      expect(await missing.text()).to.match(/signingKey is missing/);

      // The debug token itself is not a connect token either.
      const debugToken = new URL(debug.wsUrl).searchParams.get("signingKey")!;
      expect((await upgrade(withToken(session.connectUrl, debugToken))).status).to.equal(401);

      // No token reaches the log.
      const logged = JSON.stringify(logger.lines);
      for (const token of [session.signingKey, expired, otherToken, debugToken])
        expect(logged).to.not.contain(token);
    } finally {
      await browser.close();
      await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });
      await bb.sessions.update(otherSession.id, { status: "REQUEST_RELEASE" });
    }
  });

  it("starts no browser for a session nobody has connected to: the page and the WebSocket answer 409", async () => {
    const session = await bb.sessions.create({ api_timeout: 120 });
    try {
      const debug = await bb.sessions.debug(session.id);
      const page = await fetch(debug.debuggerUrl);
      expect(page.status).to.equal(409);
      const html = await page.text();
      expect(html).to.not.contain("<script");
      expect(html).to.contain("connect a client");
      const socket = await upgrade(debug.wsUrl);
      expect(socket.status).to.equal(409);
      expect(socket.body).to.include({ statusCode: 409, error: "Conflict" });
      expect(socket.body.message).to.match(/browser has not started: connect a client/);
      expect(connect.liveSessionIds()).to.not.include(session.id);
      expect(connect.launched.filter((entry) => entry.sessionId === session.id)).to.deep.equal([]);
    } finally {
      await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });
    }
  });

  it("relays CDP to a wsUrl client, which does not keep a session without keepAlive alive and gets its close frame", async () => {
    const { session, browser } = await connectedSession({ keepAlive: false });
    const debug = await bb.sessions.debug(session.id);
    const watcher = await rawCdp(debug.wsUrl);
    const targets = await watcher.send("Target.getTargets");
    const infos = (targets.result?.targetInfos ?? []) as { type: string; url: string }[];
    expect(infos.some((target) => target.type === "page" && target.url === pageUrl)).to.equal(true);
    const started = (await connect.browserOf(session.id))!;

    // The last connect client leaves: the session is released although the watcher is still there.
    await browser.close();
    expect(await watcher.closed).to.deep.equal(CLOSE.released);
    const ended = await bb.sessions.retrieve(session.id);
    expect(ended.status).to.equal("COMPLETED");
    await waitFor("the browser to be gone", () => !connect.liveSessionIds().includes(session.id));
    expect(connect.launched.filter((entry) => entry.sessionId === session.id)).to.deep.equal([
      { sessionId: session.id, pid: started.pid, profileDir: started.profileDir },
    ]);

    const refused = await upgrade(debug.wsUrl);
    expect(refused.status).to.equal(410);
  });

  it("answers a plain HTTP request to the WebSocket path with 426 and another method on the page with 405", async () => {
    const session = await bb.sessions.create({ api_timeout: 60 });
    try {
      const debug = await bb.sessions.debug(session.id);
      const plain = await fetch(debug.wsUrl.replace(/^ws/, "http"));
      expect(plain.status).to.equal(426);
      const posted = await fetch(debug.debuggerUrl, { method: "POST" });
      expect(posted.status).to.equal(405);
      expect(posted.headers.get("allow")).to.equal("GET, HEAD");
    } finally {
      await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });
    }
  });
});

describe("live view frame-ancestors (LIVE_VIEW_FRAME_ANCESTORS)", () => {
  it("defaults to any embedder and takes a team's own list of CSP sources", () => {
    expect(liveViewFrameAncestors({})).to.equal("*");
    expect(
      liveViewFrameAncestors({ LIVE_VIEW_FRAME_ANCESTORS: "  https://app.example.com   'self' " }),
    ).to.equal("https://app.example.com 'self'");
    expect(liveViewFrameAncestors({ LIVE_VIEW_FRAME_ANCESTORS: "'none'" })).to.equal("'none'");
    expect(viewerHeaders("https://app.example.com")["content-security-policy"]).to.match(
      /; frame-ancestors https:\/\/app\.example\.com$/,
    );
  });

  it("refuses a value that is not CSP sources, naming the variable", () => {
    for (const bad of [
      "https://a.example; script-src *",
      "https://a.example,https://b.example",
      "'unsafe-inline'",
    ]) {
      const result = liveViewFrameAncestors({ LIVE_VIEW_FRAME_ANCESTORS: bad });
      expect(result, bad).to.be.instanceOf(Error);
      expect((result as Error).message).to.match(/^LIVE_VIEW_FRAME_ANCESTORS must be/);
    }
  });
});
