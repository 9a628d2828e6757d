import type { Readable, Writable } from "node:stream";

/**
 * CDP over the browser's `--remote-debugging-pipe` (file descriptors 3 and 4, NUL-separated JSON
 * messages), shared by every client of a session. Nothing listens on a port, so no other process
 * on the machine can drive the browser. Each client gets a browser session of its own
 * (`Target.attachToBrowserTarget`), which Chrome keeps apart like a separate connection (its own
 * auto-attach, discovered targets and events); this class rewrites message ids and routes replies
 * and events to the client that owns them, and refuses commands that would reach the machine's
 * files.
 */
export class CdpPipe {
  private nextId = 1;
  private buffered = "";
  private readonly pending = new Map<number, Pending>();
  /** Each client's browser-session id. */
  private readonly clients = new Map<string, PipeClient>();
  /** Child sessions (pages, workers) by id, with the client that attached them. */
  private readonly owners = new Map<string, PipeClient>();
  /** Child sessions' target ids (for the session log's page numbers). */
  private readonly targets = new Map<string, string>();
  private closedError: Error | undefined;

  constructor(
    private readonly output: Writable,
    input: Readable,
    private readonly policy: CommandPolicy = {},
  ) {
    input.setEncoding("utf8");
    input.on("data", (chunk: string) => this.onData(chunk));
    input.on("close", () => this.shutdown(new Error("the browser closed its DevTools pipe")));
    input.on("error", () => undefined);
    output.on("error", () => undefined);
  }

  /** Sends a command as the pipe's own root session (not a client's) and resolves with its result. */
  call<T = Record<string, unknown>>(
    method: string,
    params: Record<string, unknown> = {},
    timeoutMs = 5000,
  ): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`the browser did not answer ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref?.();
      this.pending.set(id, {
        internal: (message) => {
          clearTimeout(timer);
          if (message.error) reject(new Error(`${method} failed: ${message.error.message}`));
          else resolve(message.result as T);
        },
      });
      this.write({ id, method, params });
    });
  }

  /** A new client: a browser session of its own on the shared pipe. */
  async connect(): Promise<PipeClient> {
    const { sessionId } = await this.call<{ sessionId: string }>("Target.attachToBrowserTarget");
    const client = new PipeClient(this, sessionId);
    this.clients.set(sessionId, client);
    return client;
  }

  /** Every client's socket ends and pending calls fail (the browser exited). */
  shutdown(error: Error): void {
    if (this.closedError) return;
    this.closedError = error;
    for (const [, entry] of this.pending) entry.internal?.({ error: { message: error.message } });
    this.pending.clear();
    for (const client of [...this.clients.values()]) client.ended();
    this.clients.clear();
    this.owners.clear();
  }

  /** @internal A client's command, after the policy: ids rewritten, routed to its session. */
  forward(client: PipeClient, message: ClientMessage): void {
    if (
      message.method === "DOM.setFileInputFiles" &&
      this.policy.resolveFilePaths &&
      !reachesLocalFiles(message.params)
    ) {
      const files = message.params?.files;
      if (!this.policy.allowFilePaths?.(files)) {
        // Paths of files uploaded through the API: fetched for this browser, then the command goes on.
        void this.policy.resolveFilePaths(files).then(
          (resolved) => {
            if (typeof resolved === "string") return this.refuse(client, message, resolved);
            // The log keeps what the client sent, not the paths on this machine.
            this.send(client, { ...message, params: { ...message.params, files: resolved } }, message.params);
          },
          (error: unknown) =>
            this.refuse(client, message, `the uploaded files could not be read: ${(error as Error).message}`),
        );
        return;
      }
    }
    const refusal = this.refusal(message);
    if (refusal) return this.refuse(client, message, refusal);
    this.send(client, message);
  }

  private refuse(client: PipeClient, message: ClientMessage, refusal: string): void {
    client.deliver(
      JSON.stringify({
        id: message.id,
        error: { code: -32000, message: refusal },
        sessionId: message.sessionId,
      }),
    );
  }

  private send(client: PipeClient, message: ClientMessage, loggedParams = message.params): void {
    if (message.sessionId !== undefined && this.owners.get(message.sessionId) !== client) {
      client.deliver(
        JSON.stringify({
          id: message.id,
          error: { code: -32001, message: "Session with given id not found." },
          sessionId: message.sessionId,
        }),
      );
      return;
    }
    const id = this.nextId++;
    this.pending.set(id, {
      client,
      clientId: message.id,
      method: message.method,
      params: loggedParams,
      clientSessionId: message.sessionId,
      sentAt: Date.now(),
    });
    this.write({ ...message, id, sessionId: message.sessionId ?? client.browserSessionId });
  }

  /** Runs a policy hook: whatever it does, the message is still routed. */
  private hook(run: () => void): void {
    try {
      run();
    } catch (error) {
      process.emitWarning(`a CDP pipe hook failed: ${(error as Error).message}`);
    }
  }

  /** The target (page, worker) a child session is attached to, as the browser announced it. */
  targetOf(sessionId: string | undefined): string | undefined {
    return sessionId === undefined ? undefined : this.targets.get(sessionId);
  }

  /** @internal A client went away: its browser session (and the sessions under it) detach. */
  release(client: PipeClient): void {
    if (!this.clients.delete(client.browserSessionId)) return;
    for (const [sessionId, owner] of this.owners) if (owner === client) this.owners.delete(sessionId);
    this.call("Target.detachFromTarget", { sessionId: client.browserSessionId }).catch(() => undefined);
  }

  private refusal(message: ClientMessage): string | undefined {
    if (typeof message.method !== "string" || typeof message.id !== "number") return "malformed CDP message";
    const params = message.params ?? {};
    if (LOADS_URLS.has(message.method) && reachesLocalFiles(params)) {
      return "file: URLs are not allowed: this browser cannot open the machine's files";
    }
    if (message.method === "DOM.setFileInputFiles" && !this.policy.allowFilePaths?.(params.files)) {
      return "DOM.setFileInputFiles with local paths is not allowed here: pass the file's bytes (e.g. setInputFiles with a buffer)";
    }
    if (
      (message.method === "Browser.setDownloadBehavior" || message.method === "Page.setDownloadBehavior") &&
      typeof params.downloadPath === "string" &&
      this.policy.downloadPath
    ) {
      // Downloads land in the session's own folder, whatever path the client named.
      params.downloadPath = this.policy.downloadPath;
    }
    return undefined;
  }

  private write(message: Record<string, unknown>): void {
    if (this.closedError) return;
    this.output.write(JSON.stringify(message) + "\0");
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    let end: number;
    while ((end = this.buffered.indexOf("\0")) !== -1) {
      const text = this.buffered.slice(0, end);
      this.buffered = this.buffered.slice(end + 1);
      let message: BrowserMessage;
      try {
        message = JSON.parse(text);
      } catch {
        continue;
      }
      this.route(message);
    }
  }

  private route(message: BrowserMessage): void {
    if (message.method === "Target.attachedToTarget") {
      const params = message.params as
        { sessionId?: unknown; targetInfo?: { targetId?: unknown } } | undefined;
      if (typeof params?.sessionId === "string" && typeof params.targetInfo?.targetId === "string")
        this.targets.set(params.sessionId, params.targetInfo.targetId);
    } else if (message.method === "Target.detachedFromTarget") {
      const params = message.params as { sessionId?: unknown } | undefined;
      if (typeof params?.sessionId === "string") this.targets.delete(params.sessionId);
    }
    if (message.method !== undefined) this.hook(() => this.policy.observe?.(message));
    if (typeof message.id === "number") {
      const entry = this.pending.get(message.id);
      if (!entry) return;
      this.pending.delete(message.id);
      if (entry.internal) return entry.internal(message);
      const client = entry.client!;
      this.hook(() =>
        this.policy.record?.({
          method: entry.method ?? "",
          params: entry.params ?? {},
          sessionId: entry.clientSessionId,
          targetId: this.targetOf(entry.clientSessionId),
          result: message.result as Record<string, unknown> | undefined,
          error: message.error?.message,
          sentAt: entry.sentAt ?? Date.now(),
          answeredAt: Date.now(),
        }),
      );
      const attached = (message.result as { sessionId?: unknown } | undefined)?.sessionId;
      if (typeof attached === "string" && entry.method?.startsWith("Target.attach"))
        this.owners.set(attached, client);
      client.deliver(JSON.stringify(this.forClient(client, { ...message, id: entry.clientId })));
      return;
    }
    if (message.sessionId === undefined) return; // the pipe's own root session: not a client's
    const owner = this.clients.get(message.sessionId) ?? this.owners.get(message.sessionId);
    if (!owner) return;
    const params = message.params as { sessionId?: unknown } | undefined;
    if (message.method === "Target.attachedToTarget" && typeof params?.sessionId === "string") {
      this.owners.set(params.sessionId, owner);
    }
    owner.deliver(JSON.stringify(this.forClient(owner, message)));
    if (message.method === "Target.detachedFromTarget" && typeof params?.sessionId === "string") {
      this.owners.delete(params.sessionId);
    }
  }

  /** A client sees its browser session as the connection itself: no sessionId on browser-level messages. */
  private forClient(client: PipeClient, message: BrowserMessage): BrowserMessage {
    if (message.sessionId !== client.browserSessionId) return message;
    const { sessionId: _browserSession, ...rest } = message;
    return rest;
  }
}

/** What a session's browser allows beyond the defaults. */
export interface CommandPolicy {
  /** Whether `DOM.setFileInputFiles` may name these paths (default: never). */
  allowFilePaths?: (files: unknown) => boolean;
  /** Where downloads go, whatever folder a client asks for. */
  downloadPath?: string;
  /**
   * For `DOM.setFileInputFiles` paths `allowFilePaths` refuses: the local paths to use instead
   * (files uploaded through the API, fetched for this browser), or a refusal message.
   */
  resolveFilePaths?: (files: unknown) => Promise<string[] | string>;
  /** Sees every event the browser sends (downloads are noticed here), before it is routed. */
  observe?: (message: BrowserMessage) => void;
  /** Told of every client command with its answer (the session's CDP log). */
  record?: (call: RecordedCall) => void;
}

/** One client command and the browser's answer to it. */
export interface RecordedCall {
  method: string;
  params: Record<string, unknown>;
  /** The client's CDP session (undefined: its browser-level session). */
  sessionId?: string;
  /** The target that session is attached to, when it is a page's or a worker's. */
  targetId?: string;
  result?: Record<string, unknown>;
  error?: string;
  sentAt: number;
  answeredAt: number;
}

/** One client's view of the pipe: what the relay reads from and writes to. */
export class PipeClient {
  private listeners: ((text: string) => void)[] = [];
  private closeListeners: (() => void)[] = [];
  private early: string[] = [];
  private done = false;

  constructor(
    private readonly pipe: CdpPipe,
    readonly browserSessionId: string,
  ) {}

  get closed(): boolean {
    return this.done;
  }

  /** Sends one CDP message (JSON text) from the client. A message that is not JSON is dropped. */
  send(text: string): void {
    if (this.done) return;
    let message: ClientMessage;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof message !== "object" || message === null) return;
    this.pipe.forward(this, message);
  }

  /** Messages for the client; those that arrived before the first listener are replayed to it. */
  onMessage(listener: (text: string) => void): void {
    this.listeners.push(listener);
    const early = this.early;
    this.early = [];
    for (const text of early) listener(text);
  }

  onClose(listener: () => void): void {
    if (this.done) listener();
    else this.closeListeners.push(listener);
  }

  /** The client left: its browser session detaches. */
  close(): void {
    if (this.done) return;
    this.pipe.release(this);
    this.ended();
  }

  /** @internal */
  deliver(text: string): void {
    if (this.done) return;
    if (this.listeners.length === 0) this.early.push(text);
    for (const listener of this.listeners) listener(text);
  }

  /** @internal */
  ended(): void {
    if (this.done) return;
    this.done = true;
    for (const listener of this.closeListeners) listener();
    this.closeListeners = [];
    this.listeners = [];
  }
}

interface ClientMessage {
  id: number;
  method: string;
  params?: Record<string, unknown>;
  sessionId?: string;
}

export interface BrowserMessage {
  id?: number;
  method?: string;
  params?: unknown;
  result?: unknown;
  error?: { message: string };
  sessionId?: string;
}

interface Pending {
  client?: PipeClient;
  clientId?: number;
  method?: string;
  params?: Record<string, unknown>;
  clientSessionId?: string;
  sentAt?: number;
  internal?: (message: BrowserMessage) => void;
}

const LOCAL_FILE_URL = /^\s*(view-source:\s*)?file:/i;

/**
 * The commands that make the browser itself load a URL, where a file: URL would read the
 * machine's files. Only these are checked: a web page cannot load file: URLs by itself (Chromium
 * refuses), and scanning every command's arguments refused Playwright's own injected script
 * (its locator actions then waited forever).
 */
const LOADS_URLS = new Set([
  "Page.navigate",
  "Target.createTarget",
  "Network.loadNetworkResource",
  "Page.setDocumentContent",
]);

/** True when any string in `value` (at any depth) is a file: URL (or view-source: of one). */
export function reachesLocalFiles(value: unknown, depth = 0): boolean {
  if (depth > 20) return true;
  if (typeof value === "string") return LOCAL_FILE_URL.test(value);
  if (Array.isArray(value)) return value.some((item) => reachesLocalFiles(item, depth + 1));
  if (value && typeof value === "object") {
    return Object.values(value).some((item) => reachesLocalFiles(item, depth + 1));
  }
  return false;
}
