import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants as fsConstants, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { CdpPipe, type CommandPolicy, type PipeClient } from "./cdp-pipe";

/** Where Debian's `chromium` package puts its launcher. */
export const DEFAULT_CHROMIUM_PATH = "/usr/bin/chromium";

/** What to tell a user who has no browser. */
export function chromiumInstallHint(path: string): string {
  return (
    `connecting to a session needs Chromium, and ${path} is not an executable file. ` +
    "Install it (Debian/Ubuntu: `sudo apt-get install -y chromium`) or set CHROMIUM_PATH to a Chromium or Chrome binary."
  );
}

/** The browser binary: CHROMIUM_PATH, else Debian's default path. */
export function chromiumPath(env: Record<string, string | undefined> = process.env): string {
  return env.CHROMIUM_PATH?.trim() || DEFAULT_CHROMIUM_PATH;
}

/** True when `path` is an executable file. */
export function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The command line of a session's browser. Headless, no first-run UI, nothing that phones home
 * (background networking, component updates, sync), and DevTools over a pipe (file descriptors 3
 * and 4), not a port: no other process on the machine can drive it. Cookies and saved passwords
 * are encrypted with Chromium's fixed key (`--password-store=basic`; on macOS
 * `--use-mock-keychain`), never with a key from the desktop's keyring: a context's profile saved
 * here then decrypts in any other session's browser, on any machine.
 */
export function chromiumArgs(profileDir: string, extraArgs: string[] = []): string[] {
  return [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--password-store=basic",
    "--use-mock-keychain",
    `--user-data-dir=${profileDir}`,
    "--remote-debugging-pipe",
    ...extraArgs,
    "about:blank",
  ];
}

/** One of the browser's targets (`Target.getTargets`). */
export interface DevToolsTarget {
  id: string;
  type: string;
  url: string;
  title: string;
  faviconUrl?: string;
}

export interface BrowserExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when `close()` asked for it; false for a crash or an outside kill. */
  requested: boolean;
  /** The last lines the browser wrote to stderr (for the log when it crashed). */
  stderrTail: string;
}

/** A running headless Chromium with its own profile folder. */
export interface ChromiumProcess {
  pid: number;
  profileDir: string;
  /** Opens a client's own browser-level CDP session on the browser's pipe (what the relay joins to a client). */
  connectClient(): Promise<PipeClient>;
  /** Settles when the browser process has exited (for whatever reason). */
  exited: Promise<BrowserExit>;
  /** The browser's page targets. */
  listTargets(timeoutMs?: number): Promise<DevToolsTarget[]>;
  /** Sends a CDP command on the pipe's own browser-level session (not a client's). */
  call<T = Record<string, unknown>>(
    method: string,
    params?: Record<string, unknown>,
    timeoutMs?: number,
  ): Promise<T>;
  /**
   * Asks the browser to quit as a user would (CDP `Browser.close`), so it writes cookies, storage
   * and preferences to its profile folder before it exits; if it has not exited within `timeoutMs`
   * it gets SIGTERM, and SIGKILL after `killAfterMs` more. Leaves the profile folder (`close`
   * removes it). Resolves true when the browser exited by itself (its profile is complete).
   */
  quit(timeoutMs?: number, killAfterMs?: number): Promise<boolean>;
  /**
   * Ends the browser and every helper process it started, then removes the profile folder. The
   * profile is thrown away, so by default nothing is flushed: the process group gets SIGKILL at
   * once; with `graceMs` > 0 it gets SIGTERM first. Safe to call more than once.
   */
  close(graceMs?: number): Promise<void>;
}

/** How long `quit` waits for a browser to exit after `Browser.close` (a 3x slower machine included). */
export const QUIT_TIMEOUT_MS = 15_000;
/** How long `quit` waits after SIGTERM before SIGKILL. */
export const QUIT_KILL_AFTER_MS = 5_000;

export interface LaunchOptions {
  executablePath: string;
  /** Folder under which the profile folder is made; default the OS temp folder. */
  profileParent?: string;
  /** How long to wait for the DevTools endpoint; default 20 s. */
  timeoutMs?: number;
  /** Extra command-line switches (tests). */
  extraArgs?: string[];
  /**
   * Fills the fresh profile folder before the browser starts (e.g. unpacks the session's
   * extension there) and returns switches to add. A failure ends the launch and removes the folder.
   */
  prepareProfile?: (profileDir: string) => Promise<string[]>;
  /**
   * Resolve only once the loaded extensions' service workers are running (as a Proxy hands over a
   * browser whose extensions are ready): a client such as Stagehand that looks for its extension's
   * worker at once then finds it, rather than waiting to wake it.
   */
  waitForExtensionWorkers?: boolean;
  /** What clients may do beyond the defaults (file input paths, the downloads folder). */
  policy?: (profileDir: string) => CommandPolicy;
}

const STDERR_TAIL_BYTES = 4096;

function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
}

/**
 * Starts one headless Chromium in a fresh profile folder and resolves once it answers on its
 * DevTools pipe.
 * The browser leads its own process group, so `close()` also ends its renderers and helpers.
 * Rejects (and cleans up) when the binary is missing, the browser exits early, or it is not
 * ready within the timeout.
 */
export async function launchChromium(options: LaunchOptions): Promise<ChromiumProcess> {
  if (!isExecutable(options.executablePath)) throw new Error(chromiumInstallHint(options.executablePath));
  const profileDir = mkdtempSync(join(options.profileParent ?? tmpdir(), "wc-chromium-"));
  let prepared: string[];
  try {
    prepared = options.prepareProfile ? await options.prepareProfile(profileDir) : [];
  } catch (error) {
    removeDir(profileDir);
    throw error;
  }
  const child: ChildProcess = spawn(
    options.executablePath,
    chromiumArgs(profileDir, [...prepared, ...(options.extraArgs ?? [])]),
    {
      detached: true,
      // fd 3: commands to the browser; fd 4: its replies and events (--remote-debugging-pipe).
      stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"],
      // Crash reports and config land inside the profile folder, which is removed with the session.
      env: {
        ...process.env,
        XDG_CONFIG_HOME: join(profileDir, ".config"),
        XDG_CACHE_HOME: join(profileDir, ".cache"),
      },
    },
  );

  let stderrTail = "";
  let closeRequested = false;
  const exited = new Promise<BrowserExit>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal, requested: closeRequested, stderrTail }));
  });

  const pipe = new CdpPipe(
    child.stdio[3] as Writable,
    child.stdio[4] as Readable,
    // Downloads stay inside the session's profile folder, which goes with the session.
    { downloadPath: join(profileDir, "downloads"), ...options.policy?.(profileDir) },
  );
  void exited.then(({ code, signal }) =>
    pipe.shutdown(new Error(`the browser exited (${signal ?? `code ${code}`})`)),
  );
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_BYTES);
  });

  try {
    const timeoutMs = options.timeoutMs ?? 20_000;
    await new Promise<void>((resolve, reject) => {
      child.once("error", (error) => reject(new Error(`could not start Chromium: ${error.message}`)));
      void exited.then(({ code, signal }) =>
        reject(
          new Error(
            `Chromium exited before it was ready (${signal ?? `code ${code}`}): ${stderrTail.trim().split("\n").slice(-3).join(" | ")}`,
          ),
        ),
      );
      pipe.call("Browser.getVersion", {}, timeoutMs).then(
        () => resolve(),
        (error: Error) =>
          reject(
            new Error(
              `Chromium did not answer on its DevTools pipe within ${timeoutMs} ms: ${error.message}`,
            ),
          ),
      );
    });

    if (options.waitForExtensionWorkers) await extensionWorkersStarted(pipe, timeoutMs);
    // The session's download folder, set through CDP before any client: downloads are allowed,
    // land there (named by their guid) and report their progress, so the stand-in can store them.
    await pipe.call(
      "Browser.setDownloadBehavior",
      { behavior: "allowAndName", downloadPath: join(profileDir, "downloads"), eventsEnabled: true },
      timeoutMs,
    );

    let closing: Promise<void> | undefined;
    return {
      pid: child.pid!,
      profileDir,
      exited,
      connectClient: () => pipe.connect(),
      async listTargets(timeoutMs = 2000) {
        const { targetInfos } = await pipe.call<{
          targetInfos: { targetId: string; type: string; url: string; title: string }[];
        }>("Target.getTargets", {}, timeoutMs);
        return targetInfos.map((target) => ({
          id: target.targetId,
          type: target.type,
          url: target.url,
          title: target.title,
        }));
      },
      call: (method, params, timeoutMs) => pipe.call(method, params, timeoutMs),
      async quit(timeoutMs = QUIT_TIMEOUT_MS, killAfterMs = QUIT_KILL_AFTER_MS) {
        if (closing || child.exitCode !== null || child.signalCode !== null) {
          await exited;
          return false;
        }
        closeRequested = true;
        // The reply may never come: the pipe closes as the browser exits.
        pipe.call("Browser.close", {}, timeoutMs).catch(() => undefined);
        let timer: NodeJS.Timeout | undefined;
        const inTime = await Promise.race([
          exited.then(() => true),
          new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
        ]);
        clearTimeout(timer);
        if (!inTime) await stopGroup(child, exited, killAfterMs);
        return inTime;
      },
      close(graceMs = 0) {
        closing ??= (async () => {
          closeRequested = true;
          await stopGroup(child, exited, graceMs);
          removeDir(profileDir);
        })();
        return closing;
      },
    };
  } catch (error) {
    closeRequested = true;
    await stopGroup(child, exited, 0);
    removeDir(profileDir);
    throw error;
  }
}

/** Polls the browser's targets until an extension service worker runs (or `timeoutMs` passes: then the client wakes it). */
async function extensionWorkersStarted(pipe: CdpPipe, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + Math.min(timeoutMs, 5000);
  while (Date.now() < deadline) {
    const { targetInfos } = await pipe.call<{ targetInfos: { type: string; url: string }[] }>(
      "Target.getTargets",
    );
    if (targetInfos.some((t) => t.type === "service_worker" && t.url.startsWith("chrome-extension://")))
      return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is already gone; fall back to the leader alone.
    try {
      child.kill(signal);
    } catch {
      // Already exited.
    }
  }
}

/** SIGTERM (or, with no grace, SIGKILL) to the browser's process group, SIGKILL after `graceMs`; resolves once the browser has exited. */
async function stopGroup(child: ChildProcess, exited: Promise<BrowserExit>, graceMs: number): Promise<void> {
  if (child.pid === undefined) return;
  const running = child.exitCode === null && child.signalCode === null;
  if (running) {
    signalGroup(child, graceMs > 0 ? "SIGTERM" : "SIGKILL");
    const timer = setTimeout(() => signalGroup(child, "SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }
  // Helpers that outlived the browser (renderers, zygotes) share its group.
  signalGroup(child, "SIGKILL");
}
