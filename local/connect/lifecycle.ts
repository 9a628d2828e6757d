import type { ChromiumProcess } from "./browser";
import { closeClient, type CloseFrame, type Relay } from "./relay";

/**
 * Where a local session is in its life, in one place:
 *
 *   live ──(last client gone, no keepAlive)──▶ idle ──(grace passed)──▶ releasing ──▶ ending
 *    ▲                                          │                          │
 *    └────────────(a client joins)──────────────┘      (Redis down: back to idle, retry later)
 *   live / idle ──(released event, expiresAt, browser crash, shutdown)──▶ ending ──▶ gone
 *
 * `live` covers the browser starting too: a client joining counts as present from its upgrade
 * on. `ending` is final: clients get their close frame, `beforeStop` runs (a persisted context
 * is saved), then the browser and its profile go.
 */
export type SessionState = "live" | "idle" | "releasing" | "ending";

export interface LifecycleHooks {
  /** The grace period after the last client left has passed (sessions without keepAlive). */
  onIdle(session: LocalSession): void;
  /** `expiresAt` has passed. */
  onExpired(session: LocalSession): void;
  /**
   * The session is ending and its clients are gone, but its browser still runs and its profile
   * is still there (the context write-back: quit the browser gracefully, save the profile). Runs
   * once; a failure is the hook's to log, and the browser and profile go after it either way.
   */
  beforeStop?(session: LocalSession, browser: ChromiumProcess): Promise<void>;
}

/** One session that has (or is starting) a browser here. */
export class LocalSession {
  readonly relays = new Set<Relay>();
  /** Upgrades in progress (a client about to join). */
  private joining = 0;
  /** True once a client has been relayed: only a session that had a client can lose its last one. */
  private hadClient = false;
  private expiryTimer: NodeJS.Timeout;
  private idleTimer: NodeJS.Timeout | undefined;
  private releasing = false;
  private ending: Promise<void> | undefined;

  constructor(
    readonly id: string,
    readonly projectId: string,
    /** From the record: a session without it is released when its last client disconnects. */
    readonly keepAlive: boolean,
    readonly browser: Promise<ChromiumProcess>,
    expiresInMs: number,
    private readonly hooks: LifecycleHooks,
  ) {
    this.expiryTimer = setTimeout(() => hooks.onExpired(this), Math.max(0, expiresInMs));
    this.expiryTimer.unref();
  }

  get state(): SessionState {
    if (this.ending) return "ending";
    if (this.releasing) return "releasing";
    if (this.idleTimer) return "idle";
    return "live";
  }

  get ended(): boolean {
    return this.ending !== undefined;
  }

  /** A client's upgrade has begun: the session counts it as present; call the returned function when the upgrade is done. */
  join(): () => void {
    this.joining++;
    this.disarmIdle();
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.joining--;
    };
  }

  /** A client is relayed from now on. */
  addRelay(relay: Relay): void {
    this.relays.add(relay);
    this.hadClient = true;
    this.disarmIdle();
  }

  removeRelay(relay: Relay): void {
    this.relays.delete(relay);
  }

  /** True when nobody is here or on the way, after someone was: a session without keepAlive then waits for its grace period. */
  get abandoned(): boolean {
    return this.hadClient && this.relays.size === 0 && this.joining === 0;
  }

  /** live → idle: arms the grace period, if the session is one that ends when abandoned. */
  armIdle(delayMs: number): void {
    if (this.keepAlive || !this.abandoned || this.ending || this.releasing || this.idleTimer) return;
    this.idleTimer = setTimeout(
      () => {
        this.idleTimer = undefined;
        this.hooks.onIdle(this);
      },
      Math.max(0, delayMs),
    );
    this.idleTimer.unref();
  }

  /** idle → live (someone came back). */
  disarmIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** idle → releasing while `release` runs; back to live (and so idle again if still abandoned) after. */
  async releaseWith(release: () => Promise<void>): Promise<void> {
    if (this.ending || this.releasing || !this.abandoned) return;
    this.releasing = true;
    try {
      await release();
    } finally {
      this.releasing = false;
    }
  }

  /**
   * → ending: every client gets `close`, `beforeStop` runs, then the browser (its whole process
   * group) and its profile go. Idempotent: every later call gets the same promise.
   */
  end(close: CloseFrame, onStopped?: (browser: ChromiumProcess) => void): Promise<void> {
    this.ending ??= (async () => {
      clearTimeout(this.expiryTimer);
      this.disarmIdle();
      for (const { client, upstream } of this.relays) {
        closeClient(client, close);
        upstream.close();
      }
      this.relays.clear();
      let browser: ChromiumProcess;
      try {
        browser = await this.browser;
      } catch {
        return; // it never started
      }
      try {
        await this.hooks.beforeStop?.(this, browser);
      } catch {
        // The hook logs its own failures; the browser must go regardless.
      }
      await browser.close();
      onStopped?.(browser);
    })();
    return this.ending;
  }

  /** The browser never started: stop the expiry timer (the next connect makes a new session). */
  abandonStart(): void {
    clearTimeout(this.expiryTimer);
  }
}
