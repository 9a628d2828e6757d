/**
 * Time from Stagehand's `browserbase.launch` to the first page title, with the unmodified
 * Stagehand 4 against the local stack (`npm run bench:stagehand`; needs Node 22.18+, which npm
 * installs, Chromium and redis-server):
 *
 * Each round, as a user writes it: `browserbase.launch({apiKey, baseUrl})` (Stagehand uploads its
 * extension, creates the session, dials connectUrl: the connect server starts Chromium with the
 * extension and Stagehand waits for the extension's service worker), `Stagehand.create`, goto a
 * page served on 127.0.0.1, read its title. Then close (release and extension delete). Prints
 * every round and the median of STAGEHAND_BENCH_ROUNDS (default 5). Loopback only.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createMemoryLogger } from "../lib/logger";
import { chromiumInstallHint, chromiumPath, isExecutable } from "../local/connect/browser";
import { startLocalStack } from "../local/stack";
import { median } from "./format";

interface StagehandPage {
  goto(url: string): Promise<unknown>;
  title(): Promise<string>;
}
interface StagehandModule {
  browserbase: {
    launch(options: { apiKey: string; baseUrl: string }): Promise<{
      context: { pages(): Promise<StagehandPage[]>; newPage(): Promise<StagehandPage> };
      close(): Promise<void>;
    }>;
  };
  Stagehand: { create(options: Record<string, unknown>): Promise<{ close(): Promise<void> }> };
}

// Stagehand is ESM-only; a Function keeps TypeScript's CommonJS output from turning import() into require().
const importEsm = new Function("specifier", "return import(specifier)") as <T>(
  specifier: string,
) => Promise<T>;

async function main(): Promise<void> {
  const rounds = Number(process.env.STAGEHAND_BENCH_ROUNDS ?? 5);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50)
    throw new Error("STAGEHAND_BENCH_ROUNDS must be 1..50");
  if (!isExecutable(chromiumPath())) throw new Error(chromiumInstallHint(chromiumPath()));
  const { browserbase, Stagehand } = await importEsm<StagehandModule>("@browserbasehq/stagehand");

  const home = mkdtempSync(join(tmpdir(), "wc-stagehand-bench-"));
  const pageServer = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<!doctype html><title>stagehand bench</title><p>hello</p>");
  });
  await new Promise<void>((resolve) => pageServer.listen(0, "127.0.0.1", () => resolve()));
  const pageUrl = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}/`;
  const stack = await startLocalStack({ home, port: 0, connectPort: 0, logger: createMemoryLogger() });
  const times: number[] = [];
  try {
    for (let round = 1; round <= rounds; round++) {
      const started = performance.now();
      const browser = await browserbase.launch({ apiKey: stack.firstApiKey!, baseUrl: stack.url });
      const stagehand = await Stagehand.create({ browser, cache: false, logging: { level: "off" } });
      const page = (await browser.context.pages())[0] ?? (await browser.context.newPage());
      await page.goto(pageUrl);
      const title = await page.title();
      const elapsed = performance.now() - started;
      if (title !== "stagehand bench") throw new Error(`unexpected title ${JSON.stringify(title)}`);
      times.push(elapsed);
      await stagehand.close();
      await browser.close();
      console.log(`round ${round}: ${elapsed.toFixed(0)} ms`);
    }
  } finally {
    await stack.stop();
    await new Promise<void>((resolve) => pageServer.close(() => resolve()));
    rmSync(home, { recursive: true, force: true });
  }
  const sorted = [...times].sort((a, b) => a - b);
  console.log(
    `launch -> first page title (Node ${process.version}): median ${median(times).toFixed(0)} ms of ${rounds} ` +
      `(min ${sorted[0].toFixed(0)}, max ${sorted[sorted.length - 1].toFixed(0)})`,
  );
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
