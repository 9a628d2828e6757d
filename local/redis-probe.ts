import { Redis } from "ioredis";
import { ConfigError, normaliseRedisUrl } from "../lib/config";

/** A Redis URL for messages: the password, if any, replaced. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString().replace(/\/$/, "");
  } catch {
    return "(unparseable URL)";
  }
}

/**
 * Checks a Redis the user named (REDIS_URL) before the stack starts, and turns what went wrong
 * into a message that names the variable and says the fix, instead of the client library's own
 * wording ("Reached the max retries per request limit", "Unknown RESP type 60").
 */
export async function probeRedis(raw: string, variable = "REDIS_URL", timeoutMs = 2000): Promise<string> {
  const url = normaliseRedisUrl(raw, variable);
  const shown = `${variable}=${redactedUrl(url)}`;
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  let protocolError: Error | undefined;
  client.on("error", (error: Error) => {
    if (/RESP|Protocol error|parse/i.test(error.message) || error.name === "ParserError")
      protocolError = error;
  });
  try {
    await client.connect();
    const pong = await client.ping();
    if (pong !== "PONG")
      throw new ConfigError(
        `${shown}: the server there answered PING with ${String(pong).slice(0, 40)}, not PONG: is it Redis?`,
      );
    return url;
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const err = error as NodeJS.ErrnoException;
    if (protocolError || /RESP|Protocol error/i.test(err.message)) {
      throw new ConfigError(
        `${shown}: the server there does not speak the Redis protocol (an HTTP server?). Point ${variable} at a Redis 7 server, or unset it and npm start runs its own.`,
      );
    }
    if (err.code === "ECONNREFUSED" || /ECONNREFUSED|Connection is closed/i.test(err.message)) {
      throw new ConfigError(
        `${shown}: nothing is listening there (connection refused). Start Redis there, or unset ${variable} and npm start runs its own redis-server.`,
      );
    }
    if (/NOAUTH|WRONGPASS|invalid password|invalid username/i.test(err.message)) {
      throw new ConfigError(
        `${shown}: Redis refused the credentials. Put the right ones in the URL (redis://user:password@host:port).`,
      );
    }
    if (err.code === "ETIMEDOUT" || /timed? ?out/i.test(err.message)) {
      throw new ConfigError(
        `${shown}: no answer within ${timeoutMs} ms. Check the host and port, and that a firewall lets the connection through.`,
      );
    }
    if (err.code === "ENOTFOUND" || err.code === "EAI_AGAIN") {
      throw new ConfigError(`${shown}: the host name does not resolve. Check ${variable}.`);
    }
    throw new ConfigError(`${shown}: could not reach Redis (${err.code ?? err.name}).`);
  } finally {
    client.disconnect();
  }
}
