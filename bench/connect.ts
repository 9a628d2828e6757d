/**
 * Time from create to first page loaded, through the local stack's connect server:
 *
 *   node -r ts-node/register/transpile-only bench/connect.ts
 *
 * Each round: the Browserbase SDK creates a session, Playwright `connectOverCDP`s to its
 * connectUrl (which starts the session's Chromium), loads a page served on 127.0.0.1 and waits
 * for its `load` event; then the session is released and its browser must exit. Prints every
 * round, the median of CONNECT_BENCH_ROUNDS (default 10), and how many browser processes are
 * left once the stack has stopped (must be 0). Loopback only; needs Chromium and redis-server.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Browserbase from "@browserbasehq/sdk";
import { chromium } from "playwright-core";
import { createMemoryLogger } from "../lib/logger";
import { chromiumInstallHint, chromiumPath, isExecutable } from "../local/connect/browser";
import { alive, processesMentioning } from "../local/connect/processes";
import { startLocalStack } from "../local/stack";

async function main(): Promise<void> {
  const rounds = Number(process.env.CONNECT_BENCH_ROUNDS ?? 10);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100)
    throw new Error("CONNECT_BENCH_ROUNDS must be 1..100");
  if (!isExecutable(chromiumPath())) throw new Error(chromiumInstallHint(chromiumPath()));

  const home = mkdtempSync(join(tmpdir(), "wc-connect-bench-"));
  const pageServer = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<!doctype html><title>bench</title><p>hello</p>");
  });
  await new Promise<void>((resolve) => pageServer.listen(0, "127.0.0.1", () => resolve()));
  const pageUrl = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}/`;

  const stack = await startLocalStack({ home, port: 0, connectPort: 0, logger: createMemoryLogger() });
  const connect = stack.connect!;
  const bb = new Browserbase({ apiKey: stack.firstApiKey!, baseURL: stack.url });
  const times: number[] = [];
  try {
    for (let round = 1; round <= rounds; round++) {
      const started = performance.now();
      const session = await bb.sessions.create({ api_timeout: 120 });
      const browser = await chromium.connectOverCDP(session.connectUrl);
      const context = browser.contexts()[0];
      const page = context.pages()[0] ?? (await context.newPage());
      await page.goto(pageUrl, { waitUntil: "load" });
      const elapsed = performance.now() - started;
      times.push(elapsed);
      const pid = (await connect.browserOf(session.id))?.pid;
      await browser.close();
      await bb.sessions.update(session.id, { status: "REQUEST_RELEASE" });
      for (let wait = 0; pid !== undefined && alive(pid) && wait < 100; wait++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      console.log(
        `round ${round}: ${elapsed.toFixed(0)} ms (browser pid ${pid} ${pid && alive(pid) ? "still running" : "ended"})`,
      );
    }
  } finally {
    await stack.stop();
    await new Promise<void>((resolve) => pageServer.close(() => resolve()));
    rmSync(home, { recursive: true, force: true });
  }
  const sorted = [...times].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  const leftPids = connect.launched.map((entry) => entry.pid).filter(alive);
  const leftByProfile = processesMentioning(connect.launched.map((entry) => entry.profileDir));
  const left = new Set([...leftPids, ...leftByProfile]).size;
  console.log(
    `create -> first page loaded: median ${median.toFixed(0)} ms of ${rounds} ` +
      `(min ${sorted[0].toFixed(0)}, max ${sorted[sorted.length - 1].toFixed(0)})`,
  );
  console.log(`browsers started: ${connect.launched.length}; browser processes left after stop: ${left}`);
  if (left > 0) process.exitCode = 1;
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
