import { createHash } from "node:crypto";
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from "node:http";
import { closeClient, type CloseFrame, type Relay } from "./relay";

/**
 * The live view behind a session's debug URLs (Browserbase's `debuggerUrl`, `debuggerFullscreenUrl`
 * and `wsUrl`): a small page that shows the session's browser as a CDP screencast and forwards a
 * person's mouse and keyboard to it, and the WebSocket it speaks CDP on. Both take the session's
 * `debug`-scoped token as `signingKey`; the connect server checks it as it checks a connect token.
 */

/** The page: `GET /v1/sessions/<id>/debugger?signingKey=<debug token>[&pageId=<targetId>][&fullscreen=true]`. */
export const DEBUGGER_PATH = /^\/v1\/sessions\/([^/]+)\/debugger\/?$/;
/** Its CDP WebSocket (the `wsUrl`): `/v1/sessions/<id>/debug?signingKey=<debug token>`. */
export const DEBUG_PATH = /^\/v1\/sessions\/([^/]+)\/debug\/?$/;

/**
 * Why a debug client is refused for a session that has no browser here. A debug client never starts
 * one: only a connect client does (the first `connectOverCDP`).
 */
export const NO_BROWSER_MESSAGE =
  "the session's browser has not started: connect a client to its connectUrl first, then open the live view";

/** Who may embed the page in a frame by default: anyone (as Browserbase's live view). */
export const DEFAULT_FRAME_ANCESTORS = "*";

/** One CSP source expression: a scheme, a host source or a quoted keyword; nothing that ends the directive. */
const FRAME_ANCESTOR_SOURCE =
  /^(?:'self'|'none'|\*|[a-z][a-z0-9+.-]*:(?:\/\/[^\s;,'"]+)?|[^\s;,'":]+(?::[0-9*]+)?)$/i;

/**
 * The page's `frame-ancestors` sources from LIVE_VIEW_FRAME_ANCESTORS (space-separated CSP sources,
 * e.g. `https://app.example.com`), else `*`; an Error that says what to fix when a source is not one.
 */
export function liveViewFrameAncestors(
  env: Record<string, string | undefined> = process.env,
): string | Error {
  const text = env.LIVE_VIEW_FRAME_ANCESTORS?.trim();
  if (!text) return DEFAULT_FRAME_ANCESTORS;
  const sources = text.split(/\s+/);
  const bad = sources.find((source) => !FRAME_ANCESTOR_SOURCE.test(source));
  if (bad !== undefined)
    return new Error(
      `LIVE_VIEW_FRAME_ANCESTORS must be space-separated CSP sources (e.g. "https://app.example.com 'self'"), and "${bad}" is not one`,
    );
  return sources.join(" ");
}

/** The live view page's options, from its query string. */
export interface ViewerOptions {
  /** `fullscreen=true`: no toolbar, only the browser's picture. */
  fullscreen: boolean;
}

const VIEWER_STYLE = `
html,body{margin:0;height:100%;background:#1b1b1f;color:#ddd;font:13px/1.4 system-ui,sans-serif}
body{display:flex;flex-direction:column}
#bar{flex:none;display:flex;gap:12px;align-items:center;padding:6px 10px;background:#26262c;border-bottom:1px solid #34343c;white-space:nowrap;overflow:hidden}
#status::before{content:"";display:inline-block;width:8px;height:8px;margin-right:6px;border-radius:50%;background:#888}
html[data-state=live] #status::before{background:#3c3}
html[data-state=closed] #status::before,html[data-state=error] #status::before{background:#d33}
#where{color:#999;overflow:hidden;text-overflow:ellipsis}
#stage{position:relative;flex:1;min-height:0;overflow:hidden;outline:none}
#screen{position:absolute;inset:0;width:100%;height:100%;object-fit:contain;user-select:none;-webkit-user-drag:none}
#screen:not([src]){visibility:hidden}
#message{position:absolute;inset:0;margin:0;display:flex;align-items:center;justify-content:center;padding:24px;text-align:center;background:rgba(0,0,0,.55)}
html[data-state=live] #message{display:none}
`;

/*
 * Plain browser JavaScript, inline (the page loads nothing else, so it works offline and the token
 * goes nowhere but the WebSocket). It reads the token and pageId from its own URL, opens the debug
 * WebSocket beside it, attaches to the page and starts a JPEG screencast; each frame is shown and
 * acknowledged once decoded (the browser sends the next one only then). Mouse and keyboard events
 * over the picture become `Input.*` commands, their coordinates scaled from the picture to the
 * page's viewport (the frame's metadata says how big that is). `data-state` and `data-frames` on
 * <html> say where it is (tests wait on them).
 */
const VIEWER_SCRIPT = `
"use strict";
(function () {
  var root = document.documentElement;
  var stage = document.getElementById("stage");
  var screen = document.getElementById("screen");
  var message = document.getElementById("message");
  var statusText = document.getElementById("status");
  var where = document.getElementById("where");
  var query = new URLSearchParams(location.search);
  var wantedPage = query.get("pageId");
  var socketUrl =
    (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
    location.pathname.replace(/\\/debugger\\/?$/, "/debug") +
    "?signingKey=" + encodeURIComponent(query.get("signingKey") || "");
  var socket = null;
  var retries = 0;
  var nextId = 1;
  var pending = new Map();
  var session = null;
  var targetId = null;
  var metadata = null;
  /** The frame being decoded, and the latest one that arrived meanwhile (shown next). */
  var decoding = null;
  var queued = null;
  var frames = 0;
  function noop() {}

  function show(state, text) {
    root.setAttribute("data-state", state);
    message.textContent = text;
    if (statusText) statusText.textContent = state === "live" ? "Live" : text;
  }
  function send(method, params, sessionId) {
    return new Promise(function (resolve, reject) {
      if (socket.readyState !== WebSocket.OPEN) return reject(new Error("the live view is not connected"));
      var id = nextId++;
      pending.set(id, { resolve: resolve, reject: reject, method: method });
      socket.send(JSON.stringify({ id: id, method: method, params: params || {}, sessionId: sessionId }));
    });
  }
  function input(method, params) {
    if (session) send(method, params, session).catch(noop);
  }

  function connect() {
    socket = new WebSocket(socketUrl);
    socket.onopen = function () {
      retries = 0;
      start().catch(function (error) {
        show("error", error.message);
        socket.close();
      });
    };
    socket.onmessage = onMessage;
    socket.onclose = onClose;
  }
  function onMessage(event) {
    var msg = JSON.parse(event.data);
    if (msg.id !== undefined) {
      var call = pending.get(msg.id);
      if (!call) return;
      pending.delete(msg.id);
      if (msg.error) call.reject(new Error(call.method + " failed: " + msg.error.message));
      else call.resolve(msg.result);
      return;
    }
    var params = msg.params || {};
    if (msg.method === "Page.screencastFrame" && msg.sessionId === session) {
      if (!decoding) display(params);
      else {
        // A frame waiting behind the one being decoded is superseded: acknowledge it unseen.
        if (queued) acknowledge(queued);
        queued = params;
      }
    } else if (msg.method === "Target.targetInfoChanged" && params.targetInfo.targetId === targetId) {
      describe(params.targetInfo);
    } else if (msg.method === "Target.detachedFromTarget" && params.sessionId === session) {
      session = null;
      show("closed", "The page was closed.");
    }
  }
  function onClose(event) {
    pending.forEach(function (call) { call.reject(new Error("the live view was disconnected")); });
    pending.clear();
    session = null;
    decoding = null;
    queued = null;
    if (root.getAttribute("data-state") === "error") return;
    // The server closes with a reason when the session ends: that is final.
    if (event.reason) return show("closed", "The live view ended: " + event.reason + ".");
    diagnose();
  }
  // A refused or dropped WebSocket says nothing to a script: ask the page's own URL (the same
  // checks, answered in JSON) why. A refusal (4xx) is final; anything else is retried a few times.
  async function diagnose() {
    show("connecting", "Reconnecting...");
    try {
      var response = await fetch(location.href, {
        headers: { accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
      });
      if (response.status >= 400 && response.status < 500) {
        var body = await response.json().catch(function () { return {}; });
        return show("closed", "The live view is not available: " + (body.message || "HTTP " + response.status) + ".");
      }
    } catch (error) {
      // The connect host is unreachable: retry.
    }
    if (++retries > 6) return show("closed", "The live view lost its connection to the session's browser.");
    setTimeout(connect, Math.min(8000, 250 * Math.pow(2, retries)));
  }

  async function start() {
    show("connecting", "Connecting to the session's browser...");
    await send("Target.setDiscoverTargets", { discover: true });
    var pages = (await send("Target.getTargets")).targetInfos.filter(function (t) { return t.type === "page"; });
    var target = wantedPage ? pages.find(function (t) { return t.targetId === wantedPage; }) : pages[0];
    if (!target) throw new Error(wantedPage ? "That page is no longer open." : "The session's browser has no page open.");
    targetId = target.targetId;
    describe(target);
    session = (await send("Target.attachToTarget", { targetId: targetId, flatten: true })).sessionId;
    await screencast();
    if (root.getAttribute("data-state") === "connecting") show("connecting", "Waiting for the first frame...");
  }
  function screencast() {
    var scale = window.devicePixelRatio || 1;
    return send("Page.startScreencast", {
      format: "jpeg",
      quality: 80,
      maxWidth: Math.max(1, Math.round(stage.clientWidth * scale)),
      maxHeight: Math.max(1, Math.round(stage.clientHeight * scale)),
    }, session);
  }
  function describe(info) {
    if (where) where.textContent = (info.title ? info.title + " - " : "") + info.url;
  }

  // One frame is decoded at a time (a new src would abort the last, and a busy page could then
  // never show one); each is acknowledged once shown, so the browser sends frames only as fast as
  // they are drawn.
  function display(frame) {
    decoding = frame;
    screen.src = "data:image/jpeg;base64," + frame.data;
  }
  function acknowledge(frame) {
    input("Page.screencastFrameAck", { sessionId: frame.sessionId });
  }
  function decoded(shown) {
    var frame = decoding;
    decoding = null;
    if (!frame) return;
    acknowledge(frame);
    if (shown) {
      metadata = frame.metadata;
      frames++;
      root.setAttribute("data-frames", String(frames));
      if (root.getAttribute("data-state") === "connecting") show("live", "Live");
    }
    if (queued) {
      var next = queued;
      queued = null;
      display(next);
    }
  }
  screen.addEventListener("load", function () { decoded(true); });
  screen.addEventListener("error", function () { decoded(false); });
  var resizing = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(function () { if (session) screencast().catch(noop); }, 200);
  });

  // Picture coordinates to the page's viewport (CSS pixels), as object-fit: contain lays the picture out.
  function point(event, clamp) {
    if (!metadata || !screen.naturalWidth) return null;
    var box = screen.getBoundingClientRect();
    var fit = Math.min(box.width / screen.naturalWidth, box.height / screen.naturalHeight);
    var width = screen.naturalWidth * fit;
    var height = screen.naturalHeight * fit;
    var left = box.left + (box.width - width) / 2;
    var top = box.top + (box.height - height) / 2;
    var perCss = width / metadata.deviceWidth;
    var x = (event.clientX - left) / perCss;
    var y = (event.clientY - top) / perCss - (metadata.offsetTop || 0);
    var inside = x >= 0 && y >= 0 && x <= metadata.deviceWidth && y <= metadata.deviceHeight;
    if (!inside && !clamp) return null;
    return {
      x: Math.max(0, Math.min(metadata.deviceWidth, x)),
      y: Math.max(0, Math.min(metadata.deviceHeight, y)),
    };
  }
  function modifiers(event) {
    return (event.altKey ? 1 : 0) | (event.ctrlKey ? 2 : 0) | (event.metaKey ? 4 : 0) | (event.shiftKey ? 8 : 0);
  }
  var BUTTONS = ["left", "middle", "right", "back", "forward"];
  function held(buttons) {
    return buttons & 1 ? "left" : buttons & 4 ? "middle" : buttons & 2 ? "right" : "none";
  }
  function mouse(type, event, at, extra) {
    var params = { type: type, x: at.x, y: at.y, modifiers: modifiers(event), buttons: event.buttons };
    for (var key in extra) params[key] = extra[key];
    input("Input.dispatchMouseEvent", params);
  }
  var pressed = false;
  screen.addEventListener("mousedown", function (event) {
    event.preventDefault();
    stage.focus();
    var at = point(event, false);
    if (!at) return;
    pressed = true;
    mouse("mousePressed", event, at, { button: BUTTONS[event.button] || "none", clickCount: event.detail || 1 });
  });
  window.addEventListener("mouseup", function (event) {
    if (!pressed) return;
    pressed = false;
    var at = point(event, true);
    if (at) mouse("mouseReleased", event, at, { button: BUTTONS[event.button] || "none", clickCount: event.detail || 1 });
  });
  // Moves are coalesced: one in flight at a time, the latest one next.
  var moving = false;
  var nextMove = null;
  function flushMove() {
    var event = nextMove;
    nextMove = null;
    var at = event && point(event, pressed);
    if (!at || !session) return;
    moving = true;
    send("Input.dispatchMouseEvent", {
      type: "mouseMoved", x: at.x, y: at.y, modifiers: modifiers(event), button: held(event.buttons), buttons: event.buttons,
    }, session).catch(noop).then(function () {
      moving = false;
      flushMove();
    });
  }
  window.addEventListener("mousemove", function (event) {
    nextMove = event;
    if (!moving) flushMove();
  });
  screen.addEventListener("wheel", function (event) {
    event.preventDefault();
    var at = point(event, false);
    if (!at) return;
    var unit = event.deltaMode === 1 ? 40 : event.deltaMode === 2 ? stage.clientHeight : 1;
    mouse("mouseWheel", event, at, { button: "none", deltaX: event.deltaX * unit, deltaY: event.deltaY * unit });
  }, { passive: false });
  screen.addEventListener("contextmenu", function (event) { event.preventDefault(); });

  // A printable key is a keyDown with its text (the page gets keydown, keypress and input); any
  // other key is a rawKeyDown. Paste and IME input arrive as text.
  function pastes(event) {
    return (event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "v";
  }
  function key(type, event) {
    var printable = Array.from(event.key).length === 1 && !event.ctrlKey && !event.metaKey;
    var text = type === "keyUp" ? undefined : printable ? event.key : event.key === "Enter" ? "\\r" : undefined;
    input("Input.dispatchKeyEvent", {
      type: type === "keyUp" ? "keyUp" : text ? "keyDown" : "rawKeyDown",
      key: event.key,
      code: event.code,
      text: text,
      unmodifiedText: text,
      windowsVirtualKeyCode: event.keyCode,
      nativeVirtualKeyCode: event.keyCode,
      modifiers: modifiers(event),
      autoRepeat: event.repeat,
      location: event.location,
      isKeypad: event.location === 3,
    });
  }
  stage.addEventListener("keydown", function (event) {
    if (event.isComposing || event.keyCode === 229 || pastes(event)) return;
    event.preventDefault();
    key("keyDown", event);
  });
  stage.addEventListener("keyup", function (event) {
    if (event.isComposing || event.keyCode === 229 || pastes(event)) return;
    event.preventDefault();
    key("keyUp", event);
  });
  document.addEventListener("paste", function (event) {
    var text = event.clipboardData && event.clipboardData.getData("text/plain");
    event.preventDefault();
    if (text) input("Input.insertText", { text: text });
  });
  stage.addEventListener("compositionend", function (event) {
    if (event.data) input("Input.insertText", { text: event.data });
  });
  connect();
  // Take the keyboard at once only when not embedded: a frame waits for a click, not to steal focus.
  if (window.top === window) stage.focus();
})();
`;

function sha256Source(text: string): string {
  return `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;
}

const SCRIPT_SOURCE = sha256Source(VIEWER_SCRIPT);
const STYLE_SOURCE = sha256Source(VIEWER_STYLE);

/** The live view page's HTML. It carries no token: its script reads `signingKey` from its own URL. */
export function viewerPage(options: ViewerOptions): string {
  const bar = options.fullscreen
    ? ""
    : `<header id="bar"><span id="status"></span><span id="where"></span></header>`;
  return (
    `<!doctype html><html lang="en" data-state="connecting" data-frames="0"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width,initial-scale=1"><meta name="referrer" content="no-referrer">` +
    `<title>Live view</title><style>${VIEWER_STYLE}</style></head><body>${bar}` +
    `<main id="stage" tabindex="0"><img id="screen" alt="The session's browser, live" draggable="false">` +
    `<p id="message">Connecting to the session's browser...</p></main>` +
    `<script>${VIEWER_SCRIPT}</script></body></html>`
  );
}

/**
 * Headers of the page: embeddable by `frameAncestors` (no X-Frame-Options), its own inline script
 * and style only, WebSockets to its own host only, no referrer (its URL carries the token) and no
 * caching.
 */
export function viewerHeaders(frameAncestors: string): Record<string, string> {
  return {
    "content-type": "text/html; charset=utf-8",
    "content-security-policy":
      `default-src 'none'; script-src ${SCRIPT_SOURCE}; style-src ${STYLE_SOURCE}; img-src data:; ` +
      `connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors ${frameAncestors}`,
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
  };
}

/** Serves the live view page (GET, or HEAD without the body). */
export function sendViewer(
  req: IncomingMessage,
  res: ServerResponse,
  options: ViewerOptions,
  frameAncestors: string,
): void {
  const body = viewerPage(options);
  res.writeHead(200, { ...viewerHeaders(frameAncestors), "content-length": Buffer.byteLength(body) });
  res.end(req.method === "HEAD" ? undefined : body);
}

/** The page's options from its URL. */
export function viewerOptions(url: URL): ViewerOptions {
  return { fullscreen: url.searchParams.get("fullscreen") === "true" };
}

/**
 * A refused page request: the API's JSON error body for a client that asks for JSON, else a small
 * HTML page with the same message and no script. Never cached, never embeddable elsewhere than the
 * page would be, no referrer.
 */
export function sendPageRefusal(
  req: IncomingMessage,
  res: ServerResponse,
  statusCode: number,
  message: string,
  frameAncestors: string,
  extraHeaders: Record<string, string> = {},
): void {
  const error = STATUS_CODES[statusCode] ?? "Error";
  const accept = String(req.headers.accept ?? "");
  const wantsJson = /application\/json/i.test(accept) && !/text\/html/i.test(accept);
  const body = wantsJson
    ? JSON.stringify({ statusCode, error, message })
    : `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Live view: ${statusCode} ${escapeHtml(error)}</title></head>` +
      `<body><h1>Live view unavailable</h1><p>${statusCode} ${escapeHtml(error)}: ${escapeHtml(message)}</p></body></html>`;
  res.writeHead(statusCode, {
    "content-type": wantsJson ? "application/json" : "text/html; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "content-security-policy": `default-src 'none'; frame-ancestors ${frameAncestors}`,
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    ...extraHeaders,
  });
  res.end(req.method === "HEAD" ? undefined : body);
}

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (char) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[char]!,
  );
}

/**
 * The debug clients (live views and `wsUrl` users) relayed to each session. They are kept apart
 * from the session's connect clients: they never count as a client for the keepAlive rule, so a
 * session without keepAlive is still released when its last connect client has gone, and its
 * debug clients then get the same close frame as everyone else.
 */
export class DebugClients<Session extends object> {
  private readonly bySession = new Map<Session, Set<Relay>>();

  add(session: Session, relay: Relay): void {
    let relays = this.bySession.get(session);
    if (!relays) this.bySession.set(session, (relays = new Set()));
    relays.add(relay);
  }

  delete(session: Session, relay: Relay): void {
    const relays = this.bySession.get(session);
    if (!relays) return;
    relays.delete(relay);
    if (relays.size === 0) this.bySession.delete(session);
  }

  /** Closes every debug client of a session that is ending, with the reason its other clients get. */
  closeAll(session: Session, close: CloseFrame): void {
    const relays = this.bySession.get(session);
    this.bySession.delete(session);
    for (const { client, upstream } of relays ?? []) {
      closeClient(client, close);
      upstream.close();
    }
  }
}
