/**
 * What the benchmarks send and store: one typical create body (what Stagehand and the SDK send),
 * the record the create path makes from it, and the fixed response body of the floor servers.
 */
import { principalIdFor } from "../lib/apikeys";
import type { SessionRecord } from "../lib/session";
import { SESSION_TIMEOUT_MAX_SECONDS } from "../lib/config";
import {
  DEFAULT_MAX_RETAINED_SESSIONS,
  keys,
  recordToFields,
  requestDeadline,
  SESSION_EVENTS_CHANNEL,
} from "../lib/store";

/** Project ids of the benchmark's API keys (each its own hash tag, so runs do not mix). */
export const PROJECTS = {
  /** create runs */
  create: "bench-create",
  /** 100 sessions made at set-up: the list and retrieve runs */
  list: "bench-list",
  /** sessions seeded for the release runs (same script, same record shape) */
  release: "bench-release",
  /** cold-start and heap probes */
  probe: "bench-probe",
  /** slot handover: a project that allows one live session, waited for with Prefer: wait */
  queue: "bench-queue",
  /** floors A and B */
  floorA: "bench-floor-a",
  floorB: "bench-floor-b",
} as const;

/** Session timeout of every benchmark session: long enough to outlive the run, so releases find them live. */
export const SESSION_TIMEOUT_SECONDS = 900;

/** A typical create body: a viewport, a little user metadata, the project named. */
export function createBody(projectId: string): Record<string, unknown> {
  return {
    projectId,
    timeout: SESSION_TIMEOUT_SECONDS,
    browserSettings: { viewport: { width: 1280, height: 720 } },
    userMetadata: { suite: "bench", run: "42" },
  };
}

/** Any principal id: the value is a fixed-length derived id, computed once. */
const PRINCIPAL_ID = principalIdFor("sha256:" + "0".repeat(64));

/** The record the create path writes for `createBody` (same fields, same encoding). */
export function typicalRecord(projectId: string, id: string, now: number): SessionRecord {
  const body = createBody(projectId);
  return {
    id,
    projectId,
    principalId: PRINCIPAL_ID,
    status: "RUNNING",
    createdAt: now,
    updatedAt: now,
    startedAt: now,
    expiresAt: now + SESSION_TIMEOUT_SECONDS * 1000,
    timeoutSeconds: SESSION_TIMEOUT_SECONDS,
    keepAlive: false,
    region: "us-west-2",
    proxyBytes: 0,
    browserSettings: body.browserSettings as Record<string, unknown>,
    userMetadata: body.userMetadata as Record<string, unknown>,
  };
}

export function typicalFields(projectId: string, id: string, now: number): string[] {
  return recordToFields(typicalRecord(projectId, id, now));
}

/** The config defaults the create path passes to the script (retention 7 days, longest session 6 h). */
const RETENTION_MS = 7 * 86400 * 1000;
const MAX_LIFETIME_MS = SESSION_TIMEOUT_MAX_SECONDS * 1000;

/**
 * KEYS and ARGV of CREATE_SESSION_LUA for one typical session, in the order and shape
 * SessionStore.create passes them (no idempotency key, a limit that never refuses, no wait, no
 * create bucket). The deadline is a request's (500 ms command timeout) unless `deadline` says
 * otherwise.
 */
export function createScriptArgs(
  projectId: string,
  id: string,
  now: number,
  deadline = requestDeadline(500, now),
): (string | number)[] {
  const expiresAt = now + SESSION_TIMEOUT_SECONDS * 1000;
  return [
    keys.session(projectId, id),
    keys.active(projectId),
    keys.sessions(projectId),
    keys.idempotency(projectId, ""),
    now,
    1_000_000_000,
    id,
    expiresAt,
    expiresAt + RETENTION_MS,
    now - RETENTION_MS - MAX_LIFETIME_MS,
    "",
    0,
    deadline,
    DEFAULT_MAX_RETAINED_SESSIONS,
    keys.session(projectId, ""),
    keys.usage(projectId, ""),
    keys.context(projectId, ""),
    SESSION_EVENTS_CHANNEL,
    "",
    "",
    // A caller that does not wait, with no create bucket, taking its token as a first attempt does.
    0,
    0,
    0,
    0,
    1,
    ...typicalFields(projectId, id, now),
  ];
}

/** The floors' fixed response: about the size and shape of a create response. */
export const FLOOR_RESPONSE = JSON.stringify({
  id: "00000000-0000-4000-8000-000000000000",
  createdAt: "2026-01-01T00:00:00.000Z",
  updatedAt: "2026-01-01T00:00:00.000Z",
  projectId: "bench-floor",
  startedAt: "2026-01-01T00:00:00.000Z",
  expiresAt: "2026-01-01T00:15:00.000Z",
  status: "RUNNING",
  proxyBytes: 0,
  keepAlive: false,
  region: "us-west-2",
  userMetadata: { suite: "bench", run: "42" },
  connectUrl:
    "ws://127.0.0.1:9222/v1/sessions/00000000-0000-4000-8000-000000000000/connect?signingKey=" +
    "x".repeat(180),
  seleniumRemoteUrl: "http://127.0.0.1:9222/webdriver",
  signingKey: "x".repeat(180),
});

/** Environment the stack and the probes run with (besides Redis and the secrets file). */
export const HANDLER_ENV: Record<string, string> = {
  // High enough that no create is refused however long the run.
  DEFAULT_CONCURRENCY: "100000",
  // The bench measures the request path, not the per-project token buckets: 0 turns them off.
  DEFAULT_CREATE_RATE: "0",
  DEFAULT_REQUEST_RATE: "0",
  WALLCRAWLER_REGION: "us-west-2",
  ALB_DNS_NAME: "127.0.0.1:9222",
  CONNECT_SCHEME: "ws",
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  AWS_REGION: "us-west-2",
};
