/**
 * The stack under test in its own process: `startLocalStack` on a free loopback port, against
 * the Redis and secrets home the bench made (REDIS_URL, BENCH_HOME). It prints one JSON line
 * `{"url": ...}` and, when started with an IPC channel, sends the same as a "ready" message.
 * Messages: "stop" (stop the stack and exit 0, so a --cpu-prof profile is written), "mark"
 * (answers with the monotonic clock in microseconds, the clock a V8 CPU profile uses), and
 * "pauses-start"/"pauses" (bench/pauses.ts).
 */
import { startLocalStack } from "../local/stack";
import { answerPauseRequests } from "./pauses";

async function main(): Promise<void> {
  const home = process.env.BENCH_HOME;
  const redisUrl = process.env.REDIS_URL;
  if (!home || !redisUrl) throw new Error("BENCH_HOME and REDIS_URL must be set");
  // The API alone: the connect server (the Proxy's local stand-in) is not part of what is measured.
  answerPauseRequests();
  const stack = await startLocalStack({ home, redisUrl, port: 0, connect: false });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await stack.stop();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.on("SIGINT", () => void stop());
  process.on("disconnect", () => void stop());
  process.on("message", (message: { type?: string; id?: number }) => {
    if (message?.type === "stop") void stop();
    if (message?.type === "mark") {
      process.send?.({ type: "mark", id: message.id, us: Number(process.hrtime.bigint() / 1000n) });
    }
  });
  const info = { url: stack.url, pid: process.pid };
  console.log(JSON.stringify(info));
  process.send?.({ type: "ready", ...info });
}

main().catch((error: Error) => {
  console.error(`stack process failed: ${error.message}`);
  process.exit(1);
});
