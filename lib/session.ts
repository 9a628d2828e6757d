/** Domain types of a browser session, shared by the handlers, the store and the Proxy. */

/** Statuses a client sees. PENDING is never stored; see StoredStatus for TIMED_OUT. */
export const SESSION_STATUSES = ["PENDING", "RUNNING", "ERROR", "TIMED_OUT", "COMPLETED"] as const;
export type SessionStatus = (typeof SESSION_STATUSES)[number];

/**
 * Statuses written to Redis: the API writes RUNNING and COMPLETED, the Proxy writes ERROR, the
 * timeout sweep writes TIMED_OUT (until it runs, a RUNNING record past expiresAt reads as TIMED_OUT).
 */
export type StoredStatus = "RUNNING" | "COMPLETED" | "ERROR" | "TIMED_OUT";

/**
 * Session, extension and context ids are UUIDs: anything else cannot name one, so a route answers
 * it (404, or 400 on create) without asking Redis.
 */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A session as stored (timestamps in epoch milliseconds). */
export interface SessionRecord {
  id: string;
  projectId: string;
  principalId: string;
  status: StoredStatus;
  createdAt: number;
  updatedAt: number;
  startedAt: number;
  expiresAt: number;
  endedAt?: number;
  timeoutSeconds: number;
  keepAlive: boolean;
  region: string;
  contextId?: string;
  /** True when the session writes its context back when it ends (`browserSettings.context.persist`). */
  contextPersist?: boolean;
  extensionId?: string;
  userMetadata?: Record<string, unknown>;
  /** Browser settings as requested, handed to the Proxy (stored as given, unknown fields included). */
  browserSettings?: Record<string, unknown>;
  /** Proxy configuration, encrypted (compact JWE under the token key set): it may hold passwords. */
  proxiesEncrypted?: string;
  proxyBytes: number;
  /** Set by the Proxy together with status ERROR. */
  errorReason?: string;
  /**
   * Epoch ms by which a client must connect (sessions handed to a create that waited for a slot,
   * whose client may have gone): past it, a session nobody connected to is ended.
   */
  connectBy?: number;
  /** Epoch ms of the first admitted connect (the Proxy, or the local stand-in, records it). */
  connectedAt?: number;
}

/** The Session object of the Browserbase v1 API. */
export interface SessionView {
  id: string;
  createdAt: string;
  updatedAt: string;
  projectId: string;
  startedAt: string;
  endedAt?: string;
  expiresAt: string;
  status: SessionStatus;
  proxyBytes: number;
  keepAlive: boolean;
  region: string;
  contextId?: string;
  userMetadata?: Record<string, unknown>;
}

/** The status a client sees at `now`: a RUNNING record past `expiresAt` has TIMED_OUT. */
export function effectiveStatus(
  record: Pick<SessionRecord, "status" | "expiresAt">,
  now: number,
): SessionStatus {
  if (record.status === "RUNNING" && record.expiresAt <= now) return "TIMED_OUT";
  return record.status;
}

/** Maps a stored record to the Browserbase Session shape, deriving TIMED_OUT on read. */
export function toSessionView(record: SessionRecord, now: number): SessionView {
  const status = effectiveStatus(record, now);
  const timedOut = status === "TIMED_OUT";
  const endedAt = timedOut ? record.expiresAt : record.endedAt;
  const view: SessionView = {
    id: record.id,
    createdAt: new Date(record.createdAt).toISOString(),
    updatedAt: new Date(
      timedOut ? Math.max(record.updatedAt, record.expiresAt) : record.updatedAt,
    ).toISOString(),
    projectId: record.projectId,
    startedAt: new Date(record.startedAt).toISOString(),
    ...(endedAt === undefined ? {} : { endedAt: new Date(endedAt).toISOString() }),
    expiresAt: new Date(record.expiresAt).toISOString(),
    status,
    proxyBytes: record.proxyBytes,
    keepAlive: record.keepAlive,
    region: record.region,
  };
  if (record.contextId !== undefined) view.contextId = record.contextId;
  if (record.userMetadata !== undefined) view.userMetadata = record.userMetadata;
  return view;
}
