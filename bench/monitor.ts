/**
 * Redis's MONITOR stream on a raw socket: each command Redis runs, by name, with where it came
 * from (a client's address, or "lua" for a script's own commands). ioredis's `monitor()` can take
 * the first streamed line for the reply to MONITOR itself when both arrive in one read; it then
 * throws "Command queue state error" from its socket handler, which ends the whole run.
 */
import { createConnection } from "node:net";

/** Starts monitoring once Redis has said OK; `stop` closes the connection. */
export function monitorCommands(
  redisUrl: string,
  onCommand: (name: string, source: string) => void,
): Promise<{ stop(): void }> {
  const url = new URL(redisUrl);
  const socket = createConnection({ host: url.hostname, port: Number(url.port) || 6379 });
  return new Promise((started, failed) => {
    let buffered = "";
    let ok = false;
    // Still listened for once started: an error then (Redis gone) ends the stream, never the run.
    socket.on("error", failed);
    socket.on("connect", () => socket.write("MONITOR\r\n"));
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      buffered += chunk;
      let end: number;
      while ((end = buffered.indexOf("\r\n")) !== -1) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        if (!ok) {
          if (line !== "+OK") return failed(new Error(`MONITOR answered ${line}`));
          ok = true;
          started({ stop: () => socket.destroy() });
          continue;
        }
        // +1796207320.887276 [0 127.0.0.1:41334] "hset" "key" ...   (or [0 lua] inside a script)
        const match = /^\+\S+ \[\d+ ([^\]]+)\] "((?:[^"\\]|\\.)*)"/.exec(line);
        if (match) onCommand(match[2].toLowerCase(), match[1]);
      }
    });
  });
}
