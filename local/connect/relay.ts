import { WebSocket, type RawData } from "ws";
import type { PipeClient } from "./cdp-pipe";

/** WebSocket close codes and reasons a client sees when the server ends its session. */
export const CLOSE = {
  released: { code: 1000, reason: "session released" },
  timedOut: { code: 1000, reason: "session timed out" },
  failed: { code: 1011, reason: "session failed: the browser exited" },
  ended: { code: 1000, reason: "session ended" },
  shutdown: { code: 1001, reason: "connect server shutting down" },
  browserGone: { code: 1011, reason: "browser connection closed" },
} as const;

export type CloseFrame = { code: number; reason: string };

/** CDP messages can carry whole screenshots and page contents. */
export const MAX_FRAME_BYTES = 256 * 1024 * 1024;
/** A client that does not answer our close frame is cut off after this long. */
const CLOSE_HANDSHAKE_MS = 1000;
/** How long a closed browser pipe waits for the browser's exit before it is reported as a lost connection. */
const UPSTREAM_EXIT_WAIT_MS = 1000;

/** One client joined to its browser session. */
export interface Relay {
  client: WebSocket;
  upstream: PipeClient;
}

/**
 * Joins a client's WebSocket to its browser session on the pipe: CDP messages pass both ways
 * unchanged (the pipe rewrites ids). When the client leaves, its browser session detaches and
 * `onClientGone` runs; when the browser side ends first, the client gets a close frame that says
 * whether the browser exited (a crash) or only the connection to it was lost.
 */
export function joinRelay(
  client: WebSocket,
  upstream: PipeClient,
  browserExited: Promise<unknown>,
  onClientGone: (relay: Relay) => void,
  onUpstreamGone: (relay: Relay) => void,
): Relay {
  const relay: Relay = { client, upstream };
  client.on("message", (data: RawData) => upstream.send(data.toString()));
  // Messages that arrived before this point were held by the pipe client and come first.
  upstream.onMessage((text) => {
    if (client.readyState === WebSocket.OPEN) client.send(text);
  });
  client.on("error", () => undefined);
  client.on("close", () => {
    upstream.close();
    onClientGone(relay);
  });
  upstream.onClose(() => {
    // The browser's pipe closes a moment before its exit is seen: wait briefly, so a crash
    // reaches the client as a crash.
    const settle = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), UPSTREAM_EXIT_WAIT_MS));
    void Promise.race([browserExited.then(() => true), settle]).then((exited) => {
      onUpstreamGone(relay);
      // After a requested exit the client already has its close frame and this is a no-op.
      closeClient(client, exited ? CLOSE.failed : CLOSE.browserGone);
    });
  });
  return relay;
}

/** Sends a close frame (once) and cuts the client off if it does not answer in time. */
export function closeClient(client: WebSocket, close: CloseFrame): void {
  if (client.readyState === WebSocket.OPEN || client.readyState === WebSocket.CONNECTING) {
    client.close(close.code, close.reason);
    setTimeout(() => client.terminate(), CLOSE_HANDSHAKE_MS).unref();
  }
}
