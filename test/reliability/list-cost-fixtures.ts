import { randomUUID } from "node:crypto";
import type { SessionRecord } from "../../lib/session";
import type { CreateRequest } from "../../lib/store";

/** A session record with about 8 KB of userMetadata, as a tenant that fills its metadata would make. */
export function typicalRecord(projectId: string, now: number, index: number): SessionRecord {
  return {
    id: randomUUID(),
    projectId,
    principalId: "prn_listcost",
    status: "RUNNING",
    createdAt: now,
    updatedAt: now,
    startedAt: now,
    expiresAt: Math.ceil((now + 3_600_000) / 1000) * 1000,
    timeoutSeconds: 3600,
    keepAlive: false,
    region: "us-west-2",
    proxyBytes: 0,
    userMetadata: { order: `order-${index}`, notes: "n".repeat(8000) },
  };
}

/** The store's create request for `record`, under a limit that never refuses. */
export function createBody(record: SessionRecord, now: number): CreateRequest {
  return { record, limit: 100_000, now, retentionMs: 86_400_000, maxLifetimeMs: 21_600_000 };
}
