import type { SessionFileStore } from "../../lib/session-files";
import { SessionFiles } from "./session-files";
import {
  createServer,
  STATUS_CODES,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { Cluster } from "ioredis";
import { WebSocketServer } from "ws";
import type { RuntimeConfig } from "../../lib/config";
import type { ContextStore } from "../../lib/contexts";
import { describeCause } from "../../lib/http";
import type { Logger } from "../../lib/logger";
import type { ObjectStore } from "../../lib/objects";
import type { RedisClient } from "../../lib/redis";
import type { SecretCache } from "../../lib/secrets";
import { effectiveStatus, type SessionRecord } from "../../lib/session";
import type { PageInfo, PageLister } from "../../lib/sessions";
import { SESSION_EVENTS_CHANNEL, type SessionStore } from "../../lib/store";
import { parseTokenKeySet } from "../../lib/tokens";
import { admitConnection, endedMessage } from "../../lib/admission";
import {
  chromiumInstallHint,
  chromiumPath,
  isExecutable,
  launchChromium,
  type ChromiumProcess,
} from "./browser";
import type { PipeClient } from "./cdp-pipe";
import { SessionContext } from "./context";
import { loadExtension } from "./extension";
import { LocalSession } from "./lifecycle";
import {
  DEBUG_PATH,
  DEBUGGER_PATH,
  DebugClients,
  liveViewFrameAncestors,
  NO_BROWSER_MESSAGE,
  sendPageRefusal,
  sendViewer,
  viewerOptions,
} from "./live-view";
import { closeClient, CLOSE, joinRelay, MAX_FRAME_BYTES, type CloseFrame } from "./relay";

export { CLOSE } from "./relay";

/** What the connect server needs from the local runtime (the `Runtime` satisfies it). */
export interface ConnectDeps {
  config: RuntimeConfig;
  store: SessionStore;
  secrets: SecretCache;
  logger: Logger;
  /** Epoch milliseconds. */
  now: () => number;
  redis(): Promise<RedisClient>;
  /**
   * Where session extensions' and contexts' archives are; without it a session with an extension
   * cannot start, and one with a context starts with a fresh profile and saves nothing.
   */
  objects?: ObjectStore;
  /** Context metadata and keys (sessions created with `browserSettings.context`). */
  contexts?: ContextStore;
  /** Where a session's uploads are read, its downloads stored and its CDP log written. */
  sessionFiles?: SessionFileStore;
}

export interface ConnectServerOptions {
  /** Browser binary; default CHROMIUM_PATH or /usr/bin/chromium. */
  chromiumPath?: string;
  /** Folder for the per-session profile folders; default the OS temp folder. */
  profileParent?: string;
  /** How long a browser may take to open its DevTools endpoint, in milliseconds. */
  launchTimeoutMs?: number;
  /**
   * How long a session without `keepAlive` waits, after its last client disconnected, before it is
   * released (so a quick reconnect keeps the browser), in milliseconds. Default
   * CONNECT_DISCONNECT_GRACE_MS or 2000.
   */
  disconnectGraceMs?: number;
  /**
   * CSP `frame-ancestors` sources of the live view page (who may embed it in a frame). Default
   * LIVE_VIEW_FRAME_ANCESTORS or `*`.
   */
  liveViewFrameAncestors?: string;
}

/** A browser this server started (kept for the whole run, so tests and benchmarks can check it ended). */
export interface LaunchedBrowser {
  sessionId: string;
  pid: number;
  profileDir: string;
}

const CONNECT_PATH = /^\/v1\/sessions\/([^/]+)\/connect\/?$/;
const NO_SUCH_ENDPOINT = "no such endpoint: connect to /v1/sessions/<id>/connect?signingKey=<token>";
/** Default for `disconnectGraceMs` when CONNECT_DISCONNECT_GRACE_MS is not set. */
export const DEFAULT_DISCONNECT_GRACE_MS = 2000;
/** How soon a release that failed on a Redis error is tried again (at least). */
const RELEASE_RETRY_MS = 1000;

/** A refusal of a WebSocket upgrade: an HTTP status and a message that says what to fix. */
class Refusal extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = "Refusal";
  }
}

/**
 * The local stand-in for the Proxy and its Containers: a WebSocket server on the connect host
 * that checks a session's token and record exactly as the Proxy must, runs one headless Chromium
 * per live session and relays CDP frames between the client and that browser. Sessions end when
 * released (an event on `wc:session-events`), at `expiresAt`, or when their browser dies (the
 * session is then marked ERROR). A session without `keepAlive` is also released (through
 * `SessionStore.release`, as the API's release route does) when its last client has been gone
 * for `disconnectGraceMs`. A session with a context starts in the context's saved profile, and
 * one that persists it saves the profile when it ends, however it ends (./context.ts).
 */
export class ConnectServer {
  readonly server: Server;
  /** Every browser started during this server's life, in order. */
  readonly launched: LaunchedBrowser[] = [];
  /** Pages of a live local session (for the API's debug route); empty when it has no browser. */
  readonly pages: PageLister;
  /**
   * Grace period, in milliseconds, between the last client of a session without keepAlive leaving
   * and the session's release. Applies to disconnects from then on (tests shorten it).
   */
  disconnectGraceMs: number;

  private readonly wss: WebSocketServer;
  private readonly sessions = new Map<string, LocalSession>();
  private readonly executablePath: string;
  private deps: ConnectDeps | undefined;
  private subscriber: RedisClient | undefined;
  private closing = false;
  private readonly configError: Error | undefined;
  /** Live views and other `wsUrl` clients, per session: they never keep a session alive. */
  private readonly debugClients = new DebugClients<LocalSession>();
  private readonly frameAncestors: string;

  constructor(private readonly options: ConnectServerOptions = {}) {
    this.executablePath = options.chromiumPath ?? chromiumPath();
    // A bad CONNECT_DISCONNECT_GRACE_MS is reported by `listen`, where the caller handles failures.
    const grace = options.disconnectGraceMs ?? disconnectGraceMs();
    this.disconnectGraceMs = grace instanceof Error ? DEFAULT_DISCONNECT_GRACE_MS : grace;
    const ancestors = options.liveViewFrameAncestors ?? liveViewFrameAncestors();
    this.frameAncestors = ancestors instanceof Error ? "'none'" : ancestors;
    this.configError = grace instanceof Error ? grace : ancestors instanceof Error ? ancestors : undefined;
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
    this.server = createServer((req, res) => this.onRequest(req, res));
    this.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      void this.onUpgrade(req, socket, head);
    });
    this.pages = (projectId, sessionId) => this.listPages(projectId, sessionId);
  }

  /** True when the configured browser binary exists and is executable. */
  get browserAvailable(): boolean {
    return isExecutable(this.executablePath);
  }

  get browserPath(): string {
    return this.executablePath;
  }

  /** What to tell a user when `browserAvailable` is false. */
  get installHint(): string {
    return chromiumInstallHint(this.executablePath);
  }

  /** Listens on `host:port` (port 0 picks a free one). Upgrades are refused with 503 until `start`. */
  async listen(port: number, host: string): Promise<AddressInfo> {
    if (this.configError) throw this.configError;
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  /** Starts serving: subscribes to session events on a connection of its own. */
  async start(deps: ConnectDeps): Promise<void> {
    const main = await deps.redis();
    // A connection in subscriber mode can run no other command: it needs one of its own.
    const subscriber: RedisClient = main instanceof Cluster ? main.duplicate() : main.duplicate();
    subscriber.on("error", () => undefined); // the main client already logs Redis outages
    subscriber.on("message", (_channel: string, message: string) => this.onEvent(message));
    let ready = 0;
    subscriber.on("ready", () => {
      // After a reconnect, catch up on whatever was released while the subscription was down.
      if (++ready > 1) void this.reconcile();
    });
    await subscriber.subscribe(SESSION_EVENTS_CHANNEL);
    this.subscriber = subscriber;
    this.deps = deps;
  }

  /** The browser of a live local session, if one is running (tests and benchmarks). */
  async browserOf(sessionId: string): Promise<ChromiumProcess | undefined> {
    const session = this.sessions.get(sessionId);
    return session ? session.browser.catch(() => undefined) : undefined;
  }

  /** Ids of the sessions that have a browser here now. */
  liveSessionIds(): string[] {
    return [...this.sessions.keys()];
  }

  /**
   * Ends every session's browser (clients get a 1001 close frame; persisted contexts are saved
   * first), stops listening and unsubscribes.
   */
  async close(): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    await Promise.all([...this.sessions.values()].map((session) => this.endSession(session, CLOSE.shutdown)));
    this.server.closeAllConnections();
    this.subscriber?.disconnect();
    this.subscriber = undefined;
    await closed;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    if (DEBUGGER_PATH.test(path)) {
      void this.onDebuggerPage(req, res);
      return;
    }
    const refusal =
      CONNECT_PATH.test(path) || DEBUG_PATH.test(path)
        ? new Refusal(
            426,
            "this endpoint speaks WebSocket: connect with a CDP client (e.g. Playwright connectOverCDP)",
          )
        : new Refusal(404, NO_SUCH_ENDPOINT);
    const body = JSON.stringify({
      statusCode: refusal.statusCode,
      error: STATUS_CODES[refusal.statusCode],
      message: refusal.message,
    });
    res.writeHead(refusal.statusCode, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
    });
    res.end(body);
  }

  private async onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on("error", () => undefined);
    let sessionId: string | undefined;
    let scope: "connect" | "debug" = "connect";
    try {
      const url = new URL(req.url ?? "/", "http://localhost");
      const connectMatch = CONNECT_PATH.exec(url.pathname);
      const debugMatch = connectMatch ? null : DEBUG_PATH.exec(url.pathname);
      scope = debugMatch ? "debug" : "connect";
      const match = connectMatch ?? debugMatch;
      if (!match) throw new Refusal(404, NO_SUCH_ENDPOINT);
      sessionId = sessionIdFrom(match);
      const deps = this.servingDeps();
      const { record } = await this.admit(sessionId, url, scope, deps);
      if (!this.browserAvailable) throw new Refusal(503, this.installHint);
      // A client came: a session handed to a waiting create is no longer at risk of its connect deadline.
      if (scope === "connect") await deps.store.markConnected(record.projectId, record.id, deps.now());
      if (scope === "debug") {
        await this.relayDebugClient(req, socket, head, record, deps);
        return;
      }

      const session = this.sessionFor(record, deps);
      // A client on its way in counts as present: a pending release-on-disconnect waits for it.
      const leave = session.join();
      try {
        let browser: ChromiumProcess;
        try {
          browser = await session.browser;
        } catch (error) {
          throw new Refusal(503, `could not start a browser for this session: ${(error as Error).message}`);
        }
        const upstream = await this.upstreamFor(session, browser, record, deps, socket);
        if (!upstream) return;
        this.wss.handleUpgrade(req, socket, head, (client) => {
          session.addRelay(
            joinRelay(
              client,
              upstream,
              browser.exited,
              (relay) => {
                session.removeRelay(relay);
                // A close the server made itself (release, timeout, crash, shutdown) finds the session ending.
                this.onClientGone(session);
              },
              (relay) => session.removeRelay(relay),
            ),
          );
        });
      } finally {
        leave();
        // An upgrade that came to nothing may leave the session without clients again.
        this.onClientGone(session);
      }
    } catch (error) {
      const refusal = toRefusal(error);
      this.logRefusal(scope === "debug" ? "debug upgrade" : "connect upgrade", sessionId, refusal, error);
      refuse(socket, refusal);
    }
  }

  /** The deps, while the server is serving; else a 503. */
  private servingDeps(): ConnectDeps {
    if (!this.deps || this.closing)
      throw new Refusal(503, "the connect server is not serving right now; retry shortly");
    return this.deps;
  }

  /**
   * The Proxy's own admission rule (lib/admission.ts): token (of `scope`), record, status, expiry.
   * Resolves with the admission, or throws its refusal.
   */
  private async admit(sessionId: string, url: URL, scope: "connect" | "debug", deps: ConnectDeps) {
    const admission = await admitConnection({
      sessionId,
      token: url.searchParams.get("signingKey") ?? undefined,
      keySet: await deps.secrets.getParsed(deps.config.tokenKeysSecretRef, parseTokenKeySet),
      issuer: deps.config.tokenIssuer,
      audience: deps.config.tokenAudience,
      scope,
      now: deps.now(),
      getRecord: (projectId, id) => deps.store.get(projectId, id),
    });
    if (!admission.admit) throw new Refusal(admission.status, admission.message);
    return admission;
  }

  /**
   * A new CDP client of the session's browser, once the session is confirmed still running; undefined
   * (nothing left open) when the client's socket went away meanwhile. A 503 when the browser cannot
   * be reached.
   */
  private async upstreamFor(
    session: LocalSession,
    browser: ChromiumProcess,
    record: SessionRecord,
    deps: ConnectDeps,
    socket: Duplex,
  ): Promise<PipeClient | undefined> {
    let upstream: PipeClient;
    try {
      upstream = await browser.connectClient();
    } catch (error) {
      throw new Refusal(503, `could not reach the session's browser: ${(error as Error).message}`);
    }
    // A release may have landed while the browser started, before this session was registered.
    await this.confirmRunning(session, record, deps, upstream);
    if (socket.destroyed) {
      upstream.close();
      return undefined;
    }
    return upstream;
  }

  /**
   * Throws 410 (and closes `upstream`) when the session ended while a client was on its way in: a
   * release may land while the browser starts, before the session was registered here.
   */
  private async confirmRunning(
    session: LocalSession,
    record: SessionRecord,
    deps: ConnectDeps,
    upstream: PipeClient,
  ): Promise<void> {
    const now = await deps.store.get(record.projectId, record.id);
    const nowStatus = now ? effectiveStatus(now, deps.now()) : "COMPLETED";
    if (session.ended || nowStatus !== "RUNNING") {
      upstream.close();
      if (!session.ended)
        void this.endSession(session, nowStatus === "TIMED_OUT" ? CLOSE.timedOut : CLOSE.ended);
      throw new Refusal(410, now ? endedMessage(now, nowStatus) : `session ${record.id} has ended`);
    }
  }

  /**
   * A debug client (the live view page's WebSocket, or any `wsUrl` user): relayed to the session's
   * browser like a connect client, with a browser session of its own, but it never starts a browser
   * (409 when the session has none here) and never counts for the keepAlive rule (no `join`, not
   * one of the session's relays), so watching a session does not keep it alive.
   */
  private async relayDebugClient(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    record: SessionRecord,
    deps: ConnectDeps,
  ): Promise<void> {
    const session = this.liveSession(record);
    if (!session) throw new Refusal(409, NO_BROWSER_MESSAGE);
    let browser: ChromiumProcess;
    try {
      browser = await session.browser;
    } catch {
      throw new Refusal(409, NO_BROWSER_MESSAGE);
    }
    const upstream = await this.upstreamFor(session, browser, record, deps, socket);
    if (!upstream) return;
    this.wss.handleUpgrade(req, socket, head, (client) => {
      const relay = joinRelay(
        client,
        upstream,
        browser.exited,
        (gone) => this.debugClients.delete(session, gone),
        (gone) => this.debugClients.delete(session, gone),
      );
      if (session.ended) {
        // The session ended during the handshake: this client gets what the others got.
        closeClient(client, CLOSE.ended);
        upstream.close();
        return;
      }
      this.debugClients.add(session, relay);
    });
  }

  /** The session's entry here when it has (or is starting) a browser, else undefined. */
  private liveSession(record: SessionRecord): LocalSession | undefined {
    const session = this.sessions.get(record.id);
    return session && !session.ended && session.projectId === record.projectId ? session : undefined;
  }

  /**
   * The live view page: the token is checked exactly as for the debug WebSocket (scope `debug`)
   * before any HTML is served, and so is the browser (a refused page carries no script).
   */
  private async onDebuggerPage(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let sessionId: string | undefined;
    try {
      if (req.method !== "GET" && req.method !== "HEAD")
        throw new Refusal(405, "the live view page answers GET only: open the debuggerUrl in a browser");
      const url = new URL(req.url ?? "/", "http://localhost");
      sessionId = sessionIdFrom(DEBUGGER_PATH.exec(url.pathname)!);
      const deps = this.servingDeps();
      const { record } = await this.admit(sessionId, url, "debug", deps);
      if (!this.browserAvailable) throw new Refusal(503, this.installHint);
      if (!this.liveSession(record)) throw new Refusal(409, NO_BROWSER_MESSAGE);
      sendViewer(req, res, viewerOptions(url), this.frameAncestors);
    } catch (error) {
      const refusal = toRefusal(error);
      this.logRefusal("live view page", sessionId, refusal, error);
      sendPageRefusal(
        req,
        res,
        refusal.statusCode,
        refusal.message,
        this.frameAncestors,
        refusal.statusCode === 405 ? { allow: "GET, HEAD" } : {},
      );
    }
  }

  /**
   * Logs a refusal of `what` ("connect upgrade", ...): at 500 and above as "<what> failed" with its
   * cause, else as "<first word> refused" with the reason the client was told. Never the token.
   */
  private logRefusal(what: string, sessionId: string | undefined, refusal: Refusal, error: unknown): void {
    if (refusal.statusCode >= 500) {
      this.deps?.logger.error(`${what} failed`, {
        sessionId,
        statusCode: refusal.statusCode,
        cause: describeCause(error),
      });
    } else {
      this.deps?.logger.info(`${what.replace(/ (upgrade|page)$/, "")} refused`, {
        sessionId,
        statusCode: refusal.statusCode,
        reason: refusal.message,
      });
    }
  }

  /** The session's entry, made (and its browser launched) on the first connect; reused after. */
  private sessionFor(record: SessionRecord, deps: ConnectDeps): LocalSession {
    const existing = this.sessions.get(record.id);
    if (existing && !existing.ended) return existing;
    const context = record.contextId
      ? new SessionContext(
          {
            id: record.id,
            projectId: record.projectId,
            contextId: record.contextId,
            persist: record.contextPersist === true,
          },
          deps,
        )
      : undefined;
    // Uploads handed to file inputs, downloads stored as they finish, the CDP log (session-files.ts).
    const files = new SessionFiles(
      {
        id: record.id,
        projectId: record.projectId,
        expiresAt: record.expiresAt,
        retentionMs: deps.config.retentionSeconds * 1000,
      },
      deps,
    );
    const browser = launchChromium({
      executablePath: this.executablePath,
      profileParent: this.options.profileParent,
      timeoutMs: this.options.launchTimeoutMs,
      policy: (profileDir) => files.policy(profileDir),
      prepareProfile:
        context || record.extensionId
          ? async (profileDir) => {
              // The context's profile first: the extension's folder is the stand-in's own.
              await context?.restore(profileDir);
              return record.extensionId
                ? loadExtension(record.projectId, record.extensionId, profileDir, deps)
                : [];
            }
          : undefined,
      waitForExtensionWorkers: record.extensionId !== undefined,
    }).then(async (started) => {
      // Before any client is relayed: Chromium drops session cookies when it opens a profile.
      await context?.applySessionCookies(started);
      return started;
    });
    const session = new LocalSession(
      record.id,
      record.projectId,
      record.keepAlive,
      browser,
      record.expiresAt - deps.now(),
      {
        onExpired: (expired) => void this.endSession(expired, CLOSE.timedOut),
        onIdle: (idle) => void this.releaseIdle(idle),
        beforeStop: async (_ending, started) => {
          // The last log entries and any download still being stored, then the context's write-back.
          await files.close();
          if (context?.session.persist) await context.save(started);
        },
      },
    );
    this.sessions.set(record.id, session);
    browser.then(
      (started) => {
        this.launched.push({ sessionId: record.id, pid: started.pid, profileDir: started.profileDir });
        deps.logger.info("browser started", {
          sessionId: record.id,
          projectId: record.projectId,
          pid: started.pid,
        });
        void started.exited.then((exit) => {
          if (exit.requested) return;
          void this.onBrowserCrash(session, deps, exit.signal ?? `code ${exit.code}`, exit.stderrTail);
        });
      },
      (error: Error) => {
        // `reason`, not `message`: the logger's own field of that name would hide it.
        deps.logger.error("browser failed to start", { sessionId: record.id, reason: error.message });
        void files.close();
        // Let the next connect try again.
        if (this.sessions.get(record.id) === session) this.sessions.delete(record.id);
        session.abandonStart();
      },
    );
    return session;
  }

  private async onBrowserCrash(
    session: LocalSession,
    deps: ConnectDeps,
    how: string,
    stderrTail: string,
  ): Promise<void> {
    if (session.ended) return;
    deps.logger.error("browser exited unexpectedly; marking the session ERROR", {
      sessionId: session.id,
      projectId: session.projectId,
      exit: how,
      stderr: stderrTail.split("\n").slice(-5).join("\n"),
    });
    const ended = this.endSession(session, CLOSE.failed);
    try {
      await deps.store.fail(
        session.projectId,
        session.id,
        `browser exited unexpectedly (${how})`,
        deps.now(),
      );
    } catch (error) {
      deps.logger.error("could not mark the session ERROR", {
        sessionId: session.id,
        cause: describeCause(error),
      });
    }
    await ended;
  }

  /**
   * Called whenever a client left or an upgrade finished. When a session without keepAlive has no
   * client left (and none joining), arms the timer that releases it after the grace period.
   */
  private onClientGone(session: LocalSession, delayMs = this.disconnectGraceMs): void {
    if (!this.closing) session.armIdle(delayMs);
  }

  /**
   * Releases a session whose last client has gone: the same atomic `SessionStore.release` the API's
   * release route runs (COMPLETED with endedAt, the slot in `active` freed, the `released` event
   * published). The event ends the browser; so does this, in case the event is missed (both are one
   * idempotent `endSession`).
   */
  private async releaseIdle(session: LocalSession): Promise<void> {
    const deps = this.deps;
    if (!deps || this.closing) return;
    let retryMs: number | undefined;
    await session.releaseWith(async () => {
      let record: SessionRecord | undefined;
      try {
        record = await deps.store.release(session.projectId, session.id, deps.now());
      } catch (error) {
        deps.logger.error("could not release the session after its last client disconnected", {
          sessionId: session.id,
          projectId: session.projectId,
          cause: describeCause(error),
        });
        // Redis is unavailable: try again a little later while the session stays unattended.
        retryMs = Math.max(this.disconnectGraceMs, RELEASE_RETRY_MS);
        return;
      }
      // Whatever the record says now (COMPLETED, or already ended another way), this browser is done.
      const status = record ? effectiveStatus(record, deps.now()) : "COMPLETED";
      deps.logger.info("last client disconnected from a session without keepAlive; released it", {
        sessionId: session.id,
        projectId: session.projectId,
        status,
      });
      await this.endSession(
        session,
        status === "TIMED_OUT" ? CLOSE.timedOut : status === "ERROR" ? CLOSE.failed : CLOSE.released,
      );
    });
    if (retryMs !== undefined) this.onClientGone(session, retryMs);
  }

  /** Ends a session here: close frames to its clients, then its browser and profile go. Idempotent. */
  private endSession(session: LocalSession, close: CloseFrame): Promise<void> {
    if (this.sessions.get(session.id) === session) {
      this.sessions.delete(session.id);
    }
    this.debugClients.closeAll(session, close);
    return session.end(close, (browser) =>
      this.deps?.logger.info("browser stopped", {
        sessionId: session.id,
        pid: browser.pid,
        reason: close.reason,
      }),
    );
  }

  private onEvent(message: string): void {
    let event: { type?: string; sessionId?: string; projectId?: string };
    try {
      event = JSON.parse(message);
    } catch {
      return;
    }
    const session = event.sessionId ? this.sessions.get(event.sessionId) : undefined;
    if (!session || session.projectId !== event.projectId) return;
    if (event.type === "released") void this.endSession(session, CLOSE.released);
    else if (event.type === "timed_out") void this.endSession(session, CLOSE.timedOut);
    else if (event.type === "error") void this.endSession(session, CLOSE.failed);
  }

  /** Ends local sessions whose record says they are over (after the event subscription was down). */
  private async reconcile(): Promise<void> {
    const deps = this.deps;
    if (!deps) return;
    for (const session of [...this.sessions.values()]) {
      try {
        const record = await deps.store.get(session.projectId, session.id);
        const status = record ? effectiveStatus(record, deps.now()) : "COMPLETED";
        if (status === "COMPLETED") void this.endSession(session, CLOSE.released);
        else if (status === "TIMED_OUT") void this.endSession(session, CLOSE.timedOut);
        else if (status === "ERROR") void this.endSession(session, CLOSE.failed);
      } catch {
        return; // Redis is down again; the next reconnect retries
      }
    }
  }

  private async listPages(projectId: string, sessionId: string): Promise<PageInfo[]> {
    const session = this.sessions.get(sessionId);
    if (!session || session.projectId !== projectId || session.ended) return [];
    let browser: ChromiumProcess;
    try {
      browser = await session.browser;
    } catch {
      return [];
    }
    let targets;
    try {
      targets = await browser.listTargets();
    } catch (error) {
      this.deps?.logger.warn("could not list the browser's pages", {
        sessionId,
        cause: describeCause(error),
      });
      return [];
    }
    return targets
      .filter((target) => target.type === "page")
      .map((target) => ({
        id: target.id,
        url: target.url,
        title: target.title,
        faviconUrl: target.faviconUrl ?? "",
      }));
  }
}

/**
 * The release grace period from CONNECT_DISCONNECT_GRACE_MS (milliseconds), else the default; an
 * Error that says what to fix when the variable is not a whole number of milliseconds.
 */
export function disconnectGraceMs(env: Record<string, string | undefined> = process.env): number | Error {
  const text = env.CONNECT_DISCONNECT_GRACE_MS?.trim();
  if (!text) return DEFAULT_DISCONNECT_GRACE_MS;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0)
    return new Error(
      `CONNECT_DISCONNECT_GRACE_MS must be a whole number of milliseconds (0 or more), not "${text}"`,
    );
  return value;
}

function isDependencyError(error: unknown): boolean {
  return (error as { statusCode?: number } | null)?.statusCode === 503;
}

/** A refusal as it is, or what an unexpected failure is answered with (no internals). */
function toRefusal(error: unknown): Refusal {
  if (error instanceof Refusal) return error;
  return isDependencyError(error)
    ? new Refusal(503, "a dependency of the connect server is unavailable; retry shortly")
    : new Refusal(500, "the connect server failed; see its log");
}

/** The session id from a path match; 404 when it is not valid percent-encoding. */
function sessionIdFrom(match: RegExpExecArray): string {
  try {
    return decodeURIComponent(match[1]);
  } catch {
    throw new Refusal(404, "no such session: the session id in the path is not valid");
  }
}

/** Answers a refused upgrade with a plain HTTP response carrying the API's JSON error shape. */
function refuse(socket: Duplex, refusal: Refusal): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({
    statusCode: refusal.statusCode,
    error: STATUS_CODES[refusal.statusCode],
    message: refusal.message,
  });
  socket.end(
    `HTTP/1.1 ${refusal.statusCode} ${STATUS_CODES[refusal.statusCode]}\r\n` +
      "Content-Type: application/json\r\n" +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      "Connection: close\r\n\r\n" +
      body,
  );
}
