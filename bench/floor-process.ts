/**
 * A floor: a bare node:http server that answers every request with a fixed JSON body after one
 * Redis call, in its own process. Same client library and options as the handlers.
 *   hset: floor A, one HSET of a session-sized record (the least any create can do).
 *   lua:  floor B, the very script the create path runs (CREATE_SESSION_LUA), same keys and
 *         argument shape, so the gap between it and create is the Node-side cost alone.
 * Usage: floor-process.ts <hset|lua> (env REDIS_URL); prints and sends {"url": ...}.
 */
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import { CREATE_SESSION_LUA, keys } from "../lib/store";
import { answerPauseRequests } from "./pauses";
import { createScriptArgs, FLOOR_RESPONSE, PROJECTS, typicalFields } from "./workload";

type LuaClient = Redis & { wcCreateSession(...args: (string | number)[]): Promise<unknown> };

async function main(): Promise<void> {
  const mode = process.argv[2];
  const redisUrl = process.env.REDIS_URL;
  if ((mode !== "hset" && mode !== "lua") || !redisUrl) throw new Error("usage: floor-process.ts <hset|lua>");
  answerPauseRequests();
  const redis = new Redis(redisUrl, {
    connectTimeout: 500,
    commandTimeout: 500,
    maxRetriesPerRequest: 1,
    enableAutoPipelining: false,
  }) as LuaClient;
  redis.defineCommand("wcCreateSession", { numberOfKeys: 4, lua: CREATE_SESSION_LUA });
  const project = mode === "hset" ? PROJECTS.floorA : PROJECTS.floorB;
  const body = Buffer.from(FLOOR_RESPONSE);
  const headers = {
    "content-type": "application/json; charset=utf-8",
    "content-length": String(body.length),
  };

  const work =
    mode === "hset"
      ? async () => {
          const id = randomUUID();
          await redis.hset(keys.session(project, id), ...typicalFields(project, id, Date.now()));
        }
      : async () => {
          await redis.wcCreateSession(...createScriptArgs(project, randomUUID(), Date.now()));
        };

  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      work().then(
        () => {
          res.writeHead(201, headers);
          res.end(body);
        },
        () => {
          res.writeHead(503, { "content-type": "application/json" });
          res.end('{"statusCode":503}');
        },
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const stop = () => {
    server.close();
    server.closeAllConnections();
    redis.disconnect();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("disconnect", stop);
  process.on("message", (message: { type?: string }) => {
    if (message?.type === "stop") stop();
  });
  const info = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, pid: process.pid };
  console.log(JSON.stringify(info));
  process.send?.({ type: "ready", ...info });
}

main().catch((error: Error) => {
  console.error(`floor process failed: ${error.message}`);
  process.exit(1);
});
