/**
 * `npm start`: the local stack on http://127.0.0.1:$PORT (default 3000), with the connect server
 * (one headless Chromium per connected session) on ALB_DNS_NAME (default 127.0.0.1:9222).
 * Ctrl-C stops the server, every session's browser and the Redis it started.
 */
import { startLocalStack } from "./stack";

const USAGE = `Usage: npm start [-- --help | --version]

Runs the WallCrawler API locally: the same handlers as the Lambdas on http://127.0.0.1:$PORT, a
redis-server of its own (or REDIS_URL), and the connect server (one headless Chromium per session)
on ALB_DNS_NAME. Ctrl-C stops everything it started.

Environment (all optional):
  PORT                         API port (default 3000)
  REDIS_URL                    use this Redis instead of starting one
  WALLCRAWLER_HOME             secrets.json, Redis data and uploaded extensions (default ./.wallcrawler)
  ALB_DNS_NAME                 connect host (default 127.0.0.1:9222)
  CHROMIUM_PATH                browser binary (default /usr/bin/chromium)
  CONNECT_DISCONNECT_GRACE_MS  how long a session without keepAlive outlives its last client (default 2000)
  LIVE_VIEW_FRAME_ANCESTORS    who may frame the live view: CSP sources, e.g. "https://app.example.com 'self'" (default *)
  LOG_LEVEL                    DEBUG, INFO (default), WARN or ERROR (POWERTOOLS_LOG_LEVEL wins if set)
  POWERTOOLS_METRICS_DISABLED  true: no metric (EMF) lines on stdout
  and every handler setting in the README's configuration table.

API keys: npm run keys -- create --project <id>   (and: list, projects, migrate, revoke, rotate-token-key; --help)`;

async function main(): Promise<void> {
  const version = (require("../package.json") as { version: string }).version;
  if (process.argv.includes("--help") || process.argv.includes("-h")) {
    console.log(USAGE);
    return;
  }
  if (process.argv.includes("--version")) {
    console.log(`wallcrawler-api ${version} (Node ${process.version})`);
    return;
  }
  let stack;
  try {
    stack = await startLocalStack();
  } catch (error) {
    const err = error as NodeJS.ErrnoException;
    if (err.code === "EADDRINUSE") {
      console.error(
        `Port ${process.env.PORT ?? 3000} is in use: stop what holds it or set PORT, e.g. PORT=3001 npm start`,
      );
    } else {
      console.error(err.message);
    }
    process.exit(1);
  }
  const connect = stack.connect;
  let connectLine = `${stack.runtime.config.connectScheme}://${stack.runtime.config.connectHost}`;
  if (!connect) connectLine += " (connect server not started)";
  else if (connect.browserAvailable) connectLine += ` (browser: ${connect.browserPath})`;
  else {
    connectLine +=
      ` (no browser: ${connect.browserPath} is missing)\n` +
      "           Connecting to a session needs Chromium: sudo apt-get install -y chromium" +
      " (or set CHROMIUM_PATH to a Chromium/Chrome binary). The API works without it.";
  }
  const lines = [
    `WallCrawler API ${version} (local, Node ${process.version}) listening on ${stack.url}`,
    `  Redis:   ${stack.redis ? `redis-server started on ${stack.redisUrl} (data in ${stack.home}/redis)` : stack.redisUrl}`,
    `  Secrets: ${stack.secretsFile}`,
    `  Connect: ${connectLine}`,
  ];
  if (stack.firstApiKey) {
    lines.push(
      "",
      "Created an API key for project 'local'. It is shown only this once; only its hash is stored:",
      `  ${stack.firstApiKey}`,
      "",
      "Create a session:",
      `  curl -s -X POST ${stack.url}/v1/sessions -H 'X-BB-API-Key: ${stack.firstApiKey}' -H 'Content-Type: application/json' -d '{"timeout": 300}'`,
      "then connect Playwright to its connectUrl: chromium.connectOverCDP(connectUrl)",
    );
  } else {
    lines.push(
      "",
      `API keys are in ${stack.secretsFile} (hashes only: a key is shown once, when it is made).`,
      "  List them:      npm run keys -- list",
      "  Mint another:   npm run keys -- create --project local",
    );
  }
  console.log(lines.join("\n"));

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping`);
    await stack.stop();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
  // A closed terminal: stop as for Ctrl-C rather than leave Redis and browsers behind.
  process.on("SIGHUP", () => void stop("SIGHUP"));
}

void main();
