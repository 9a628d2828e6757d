/**
 * `npm start`: the local stack on http://127.0.0.1:$PORT (default 3000).
 * Ctrl-C stops the server and the Redis it started.
 */
import { startLocalStack } from "./stack";

async function main(): Promise<void> {
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
  const lines = [
    `WallCrawler API (local) listening on ${stack.url}`,
    `  Redis:   ${stack.redis ? `redis-server started on ${stack.redisUrl} (data in ${stack.home}/redis)` : stack.redisUrl}`,
    `  Secrets: ${stack.secretsFile}`,
    `  Connect: ${stack.runtime.config.connectScheme}://${stack.runtime.config.connectHost}`,
  ];
  if (stack.firstApiKey) {
    lines.push(
      "",
      "Created an API key for project 'local'. It is shown only this once; only its hash is stored:",
      `  ${stack.firstApiKey}`,
      "",
      "Create a session:",
      `  curl -s -X POST ${stack.url}/v1/sessions -H 'X-BB-API-Key: ${stack.firstApiKey}' -H 'Content-Type: application/json' -d '{"timeout": 300}'`,
    );
  } else {
    lines.push("", "Mint another API key with: npm run keys -- create --project local");
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
}

void main();
