import { effectiveStatus, type SessionRecord } from "./session";
import {
  readSessionToken,
  TokenError,
  type SessionTokenClaims,
  type TokenKeySet,
  type TokenOptions,
  type TokenScope,
} from "./tokens";

/**
 * The Proxy's admission rule, as one function: whether a WebSocket upgrade to
 * `/v1/sessions/<id>/connect?signingKey=<token>` (or a debug URL) is let through. The local
 * connect server uses it, and the real Proxy imports it, so both refuse exactly alike.
 */
export type Admission =
  | { admit: true; claims: SessionTokenClaims; record: SessionRecord }
  | {
      admit: false;
      /** The HTTP status to answer the upgrade with. */
      status: 401 | 404 | 410;
      /** Machine-readable, for logs and metrics. */
      reason:
        | "missing_token"
        | `token_${TokenError["reason"]}`
        | "token_outlives_session"
        | "unknown_session"
        | "session_ended";
      /** What the client is told: says what to do, reveals nothing about other projects. */
      message: string;
    };

export interface AdmissionRequest extends TokenOptions {
  /** The session id from the path. */
  sessionId: string;
  /** The `signingKey` query parameter, if any. */
  token: string | undefined;
  keySet: TokenKeySet;
  /** `connect` for connectUrl, `debug` for the debugger URLs. Default `connect`. */
  scope?: TokenScope;
  /** Epoch milliseconds. */
  now: number;
  /** Reads a session record (the Redis store's `get`); a failure propagates (a 503 to the caller). */
  getRecord(projectId: string, sessionId: string): Promise<SessionRecord | undefined>;
}

/**
 * Decides an upgrade: the token must be genuine, for this session and scope, and within its
 * validity (5 s clock skew, no more); the session must exist in the token's project and be
 * RUNNING; and a connect token may not outlive the session (`exp` ≤ the record's `expiresAt`).
 * A session that has ended is a 410 even when its token has expired too, so a client learns
 * why; every other refusal is a 401 or 404.
 */
export async function admitConnection(request: AdmissionRequest): Promise<Admission> {
  if (!request.token) {
    return {
      admit: false,
      status: 401,
      reason: "missing_token",
      message: "signingKey is missing: connect with the connectUrl the API returned",
    };
  }
  let claims: SessionTokenClaims;
  let expired: boolean;
  try {
    ({ claims, expired } = await readSessionToken(request.token, request.keySet, {
      issuer: request.issuer,
      audience: request.audience,
      sessionId: request.sessionId,
      scope: request.scope ?? "connect",
      now: Math.floor(request.now / 1000),
    }));
  } catch (error) {
    if (!(error instanceof TokenError) && (error as { name?: string })?.name !== "TokenError") throw error;
    const failure = error as TokenError;
    return {
      admit: false,
      status: 401,
      reason: `token_${failure.reason}`,
      message: `signingKey was refused: ${failure.message}`,
    };
  }
  const record = await request.getRecord(claims.projectId, request.sessionId);
  if (!record || record.projectId !== claims.projectId || record.id !== request.sessionId) {
    return {
      admit: false,
      status: 404,
      reason: "unknown_session",
      message: `session ${request.sessionId} not found`,
    };
  }
  const status = effectiveStatus(record, request.now);
  if (status !== "RUNNING") {
    return { admit: false, status: 410, reason: "session_ended", message: endedMessage(record, status) };
  }
  if (expired) {
    return {
      admit: false,
      status: 401,
      reason: "token_expired",
      message: "signingKey was refused: token has expired",
    };
  }
  if ((request.scope ?? "connect") === "connect" && claims.expiresAt * 1000 > record.expiresAt) {
    return {
      admit: false,
      status: 401,
      reason: "token_outlives_session",
      message: "signingKey was refused: it expires after the session does",
    };
  }
  return { admit: true, claims, record };
}

/** Why an ended session cannot be connected to, and when it ended. */
export function endedMessage(record: SessionRecord, status: string): string {
  const when = new Date(
    status === "TIMED_OUT" ? record.expiresAt : (record.endedAt ?? record.updatedAt),
  ).toISOString();
  if (status === "TIMED_OUT") return `session ${record.id} timed out at ${when}; create a new session`;
  if (status === "ERROR") return `session ${record.id} ended with an error at ${when}; create a new session`;
  return `session ${record.id} was released at ${when}; create a new session`;
}
