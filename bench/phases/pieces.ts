/**
 * CPU cost of the pieces a request is made of, measured in-process with the library's own
 * functions: so a missed throughput target can be put down to named parts of the work.
 */
import { randomUUID } from "node:crypto";
import { authenticate, generateApiKey, parseApiKeySet } from "../../lib/apikeys";
import { createSessionBodySchema } from "../../lib/schemas";
import { toSessionView } from "../../lib/session";
import { fieldsToRecord } from "../../lib/store";
import { mintSessionToken, rotateTokenKeySet } from "../../lib/tokens";
import { round } from "../format";
import type { Phase } from "../phase";
import { log } from "../settings";
import { createBody, typicalFields } from "../workload";

export interface PieceCost {
  piece: string;
  /** CPU microseconds per operation (user + system), sequential. */
  cpuUs: number;
}

async function cost(piece: string, operations: number, op: () => unknown): Promise<PieceCost> {
  // Warm enough for V8 to optimize the path, as it is in a server that has answered a while.
  for (let i = 0; i < Math.min(5000, operations); i++) await op();
  const before = process.cpuUsage();
  for (let i = 0; i < operations; i++) await op();
  const used = process.cpuUsage(before);
  return { piece, cpuUs: round((used.user + used.system) / operations, 1) };
}

export async function measurePieces(): Promise<PieceCost[]> {
  const keySet = rotateTokenKeySet(undefined, "bench");
  const claims = {
    sessionId: randomUUID(),
    projectId: "bench",
    principalId: "prn_0000000000000000000000",
    scope: "connect" as const,
    expiresAt: Math.floor(Date.now() / 1000) + 900,
    now: Math.floor(Date.now() / 1000),
  };
  const schema = createSessionBodySchema();
  const body = createBody("bench");
  const { key, entry } = generateApiKey("bench");
  const index = parseApiKeySet(JSON.stringify({ keys: [entry] }));
  const fields = typicalFields("bench", randomUUID(), Date.now());
  const hash: Record<string, string> = {};
  for (let i = 0; i < fields.length; i += 2) hash[fields[i]] = fields[i + 1];
  const now = Date.now();
  return [
    await cost("mint a session token (JWE dir + A256GCM, node:crypto)", 20000, () =>
      mintSessionToken(keySet, claims, { issuer: "i", audience: "a" }),
    ),
    await cost("authenticate an API key (2 x SHA-256)", 20000, () =>
      authenticate(key, index, { concurrency: 25, defaultTimeout: 300 }),
    ),
    await cost("validate the create body (zod)", 20000, () => schema.safeParse(body)),
    await cost("record from HGETALL to Session JSON (one of list's 100)", 20000, () =>
      JSON.stringify(toSessionView(fieldsToRecord(hash)!, now)),
    ),
  ];
}

export const piecesPhase = {
  run() {
    log("costing the pieces of a request");
    return measurePieces();
  },
} satisfies Phase<PieceCost[]>;
