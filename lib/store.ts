import type { RedisClient } from "./redis";
import { DependencyError, guardDependency } from "./errors";
import { digestMayMatch, metadataDigest, type MetadataClause } from "./query";
import { effectiveStatus, type SessionRecord, type SessionStatus, type StoredStatus } from "./session";

/** Key names of the Redis layout. Every key of a project carries the hash tag `{projectId}`. */
export const keys = {
  session: (projectId: string, id: string) => `wc:{${projectId}}:session:${id}`,
  active: (projectId: string) => `wc:{${projectId}}:active`,
  sessions: (projectId: string) => `wc:{${projectId}}:sessions`,
  idempotency: (projectId: string, key: string) => `wc:{${projectId}}:idem:${key}`,
  extension: (projectId: string, id: string) => `wc:{${projectId}}:extension:${id}`,
  extensions: (projectId: string) => `wc:{${projectId}}:extensions`,
};

/**
 * The first lines of every mutating script: refuse to act once the request's deadline (ARGV[n],
 * epoch ms) has passed, judged by Redis's own clock. A command that waited in a stalled Redis
 * past the moment its caller was answered 503 then changes nothing when it finally runs, so a
 * 503 means "nothing happened" and a retry is safe. Returns the Lua that defines `now_ms` and
 * `past_deadline`.
 */
export const DEADLINE_LUA = `
local clock = redis.call('TIME')
local redis_now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function past_deadline(deadline) return redis_now > tonumber(deadline) end
`;

/** What a script answers when it refused to act because the deadline had passed. */
export const PAST_DEADLINE = "PAST_DEADLINE";

/**
 * The least of the command timeout a deadline leaves for the reply's way back, a caller whose
 * event loop is briefly busy, and the clocks of the caller and Redis differing (both are
 * NTP-disciplined on AWS: well under a millisecond apart). A deadline is the send time plus the
 * command timeout minus the larger of this and half the timeout: with the default 500 ms timeout
 * a script must start within 250 ms of being sent.
 */
export const DEADLINE_SKEW_MARGIN_MS = 100;

/** Sessions a project keeps (live plus ended) when the config sets no other number. */
export const DEFAULT_MAX_RETAINED_SESSIONS = 5_000;

/** Channel the Proxy subscribes to for session lifecycle events. */
export const SESSION_EVENTS_CHANNEL = "wc:session-events";

/**
 * Create, as one atomic script: replay an idempotent create, prune expired ids from the
 * project's active set, refuse when the project is at its limit, else write the record, both
 * indexes and the idempotency marker.
 * KEYS: record, active, sessions, idempotency.
 * ARGV: now, limit, id, expiresAt, recordExpireAt, listCutoff, idemValue ('' = none), idemTtlMs,
 * deadline, maxRetained, recordKeyPrefix, field, value, ...
 * Past `maxRetained` sessions in the project's list, the oldest that are not live are dropped
 * (record and list entry) in the same step, so one tenant's history cannot grow without bound.
 * Returns {1, liveCount} created; {0, liveCount, earliestExpiresAt} at the limit; {2, storedIdemValue}
 * replay; {3} past the deadline (nothing written).
 */
export const CREATE_SESSION_LUA = `${DEADLINE_LUA}
if past_deadline(ARGV[9]) then return {3} end
local now = tonumber(ARGV[1])
if ARGV[7] ~= '' then
  local previous = redis.call('GET', KEYS[4])
  if previous then return {2, previous} end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local live = redis.call('ZCARD', KEYS[2])
if live >= tonumber(ARGV[2]) then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {0, live, first[2]}
end
redis.call('HSET', KEYS[1], unpack(ARGV, 12))
redis.call('PEXPIREAT', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
redis.call('ZADD', KEYS[3], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[6])
local excess = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[10])
if excess > 0 then
  -- The oldest first; a live session (still in active) is never dropped.
  local dropped = 0
  for _, old in ipairs(redis.call('ZRANGE', KEYS[3], 0, excess + 15)) do
    if dropped >= excess then break end
    if not redis.call('ZSCORE', KEYS[2], old) then
      redis.call('ZREM', KEYS[3], old)
      redis.call('DEL', ARGV[11] .. old)
      dropped = dropped + 1
    end
  end
end
if ARGV[7] ~= '' then
  redis.call('SET', KEYS[4], ARGV[7], 'PX', ARGV[8])
end
return {1, live + 1}
`;

/**
 * Undoes a create whose caller was answered 503 (a timeout or a dropped connection): if the
 * script ran before Redis stalled but its reply never arrived, the session exists though nobody
 * was told, so it is removed again. Sent on the same connection right after the failure, so it
 * runs after the create if the create runs at all. Harmless when the create never ran.
 * KEYS: record, active, sessions, idempotency. ARGV: id, idemValue ('' = none).
 */
export const VOID_SESSION_LUA = `
if redis.call('HGET', KEYS[1], 'id') == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[2] ~= '' and redis.call('GET', KEYS[4]) == ARGV[2] then redis.call('DEL', KEYS[4]) end
return 1
`;

/**
 * Release, as one atomic script: a live RUNNING session becomes COMPLETED with endedAt, leaves
 * the active set and an event is published; an ended (or timed-out) session is left unchanged.
 * KEYS: record, active. ARGV: now, channel, deadline. Returns the record's fields, nil when it
 * does not exist, or PAST_DEADLINE (nothing changed).
 */
export const RELEASE_SESSION_LUA = `${DEADLINE_LUA}
if past_deadline(ARGV[3]) then return '${PAST_DEADLINE}' end
local record = redis.call('HMGET', KEYS[1], 'id', 'status', 'expiresAt', 'projectId')
if not record[1] then return false end
local now = tonumber(ARGV[1])
if record[2] == 'RUNNING' and tonumber(record[3]) > now then
  redis.call('HSET', KEYS[1], 'status', 'COMPLETED', 'endedAt', ARGV[1], 'updatedAt', ARGV[1])
  redis.call('ZREM', KEYS[2], record[1])
  redis.call('PUBLISH', ARGV[2], cjson.encode({type = 'released', sessionId = record[1], projectId = record[4], at = now}))
end
return redis.call('HGETALL', KEYS[1])
`;

/**
 * Marks a live session ERROR (the Proxy calls this when its browser dies).
 * KEYS: record, active. ARGV: now, reason, channel, deadline.
 */
export const FAIL_SESSION_LUA = `${DEADLINE_LUA}
if past_deadline(ARGV[4]) then return '${PAST_DEADLINE}' end
local record = redis.call('HMGET', KEYS[1], 'id', 'status', 'projectId')
if not record[1] then return false end
if record[2] == 'RUNNING' then
  redis.call('HSET', KEYS[1], 'status', 'ERROR', 'endedAt', ARGV[1], 'updatedAt', ARGV[1], 'errorReason', ARGV[2])
  redis.call('ZREM', KEYS[2], record[1])
  redis.call('PUBLISH', ARGV[3], cjson.encode({type = 'error', sessionId = record[1], projectId = record[3], at = tonumber(ARGV[1])}))
end
return redis.call('HGETALL', KEYS[1])
`;

type ScriptClient = RedisClient & {
  wcCreateSession(...args: (string | number)[]): Promise<[number, ...(string | number)[]]>;
  wcReleaseSession(...args: (string | number)[]): Promise<string[] | string | null>;
  wcFailSession(...args: (string | number)[]): Promise<string[] | string | null>;
  wcVoidSession(...args: (string | number)[]): Promise<number>;
};

/** Registers the store's scripts on a client (EVALSHA with EVAL fallback). Call once per client. */
export function defineSessionScripts(client: RedisClient): void {
  client.defineCommand("wcCreateSession", { numberOfKeys: 4, lua: CREATE_SESSION_LUA });
  client.defineCommand("wcReleaseSession", { numberOfKeys: 2, lua: RELEASE_SESSION_LUA });
  client.defineCommand("wcFailSession", { numberOfKeys: 2, lua: FAIL_SESSION_LUA });
  client.defineCommand("wcVoidSession", { numberOfKeys: 4, lua: VOID_SESSION_LUA });
}

/** Flattens a record into Redis hash field/value pairs (absent optional fields are omitted). */
export function recordToFields(record: SessionRecord): string[] {
  const fields: string[] = [
    "id", record.id,
    "projectId", record.projectId,
    "principalId", record.principalId,
    "status", record.status,
    "createdAt", String(record.createdAt),
    "updatedAt", String(record.updatedAt),
    "startedAt", String(record.startedAt),
    "expiresAt", String(record.expiresAt),
    "timeoutSeconds", String(record.timeoutSeconds),
    "keepAlive", record.keepAlive ? "1" : "0",
    "region", record.region,
    "proxyBytes", String(record.proxyBytes),
  ]; // prettier-ignore
  if (record.endedAt !== undefined) fields.push("endedAt", String(record.endedAt));
  if (record.contextId !== undefined) fields.push("contextId", record.contextId);
  if (record.extensionId !== undefined) fields.push("extensionId", record.extensionId);
  if (record.userMetadata !== undefined) {
    fields.push("userMetadata", JSON.stringify(record.userMetadata));
    // What a list with `q` reads instead of the whole metadata (lib/query.ts).
    fields.push("metadataDigest", metadataDigest(record.userMetadata));
  }
  if (record.browserSettings !== undefined)
    fields.push("browserSettings", JSON.stringify(record.browserSettings));
  if (record.proxiesEncrypted !== undefined) fields.push("proxies", record.proxiesEncrypted);
  if (record.errorReason !== undefined) fields.push("errorReason", record.errorReason);
  return fields;
}

/** Reads a record from the hash fields Redis returned; undefined for an empty (missing) hash. */
export function fieldsToRecord(hash: Record<string, string>): SessionRecord | undefined {
  if (!hash.id) return undefined;
  const record: SessionRecord = {
    id: hash.id,
    projectId: hash.projectId,
    principalId: hash.principalId,
    status: hash.status as StoredStatus,
    createdAt: Number(hash.createdAt),
    updatedAt: Number(hash.updatedAt),
    startedAt: Number(hash.startedAt),
    expiresAt: Number(hash.expiresAt),
    timeoutSeconds: Number(hash.timeoutSeconds),
    keepAlive: hash.keepAlive === "1",
    region: hash.region,
    proxyBytes: Number(hash.proxyBytes ?? 0),
  };
  if (hash.endedAt) record.endedAt = Number(hash.endedAt);
  if (hash.contextId) record.contextId = hash.contextId;
  if (hash.extensionId) record.extensionId = hash.extensionId;
  if (hash.userMetadata) record.userMetadata = JSON.parse(hash.userMetadata);
  if (hash.browserSettings) record.browserSettings = JSON.parse(hash.browserSettings);
  if (hash.proxies) record.proxiesEncrypted = hash.proxies;
  if (hash.errorReason) record.errorReason = hash.errorReason;
  return record;
}

/** The deadline of a script sent now, for a client whose commands time out after `commandTimeoutMs`. */
export function requestDeadline(commandTimeoutMs: number, now = Date.now()): number {
  return now + commandTimeoutMs - Math.max(DEADLINE_SKEW_MARGIN_MS, Math.floor(commandTimeoutMs / 2));
}

/** A script that refused to act because Redis ran it too late: a 503, and nothing changed. */
export function pastDeadline(): DependencyError {
  return new DependencyError(
    "Redis",
    new Error("Redis ran the script after the request's deadline; nothing was written"),
  );
}

function recordFromScript(reply: string[] | string | null): SessionRecord | undefined {
  if (reply === PAST_DEADLINE) throw pastDeadline();
  return Array.isArray(reply) ? fieldsToRecord(pairsToHash(reply)) : undefined;
}

/** One page of the project's `sessions` index, newest first. */
function newestIds(client: RedisClient, projectId: string, options: ListOptions): Promise<string[]> {
  return client.zrevrange(keys.sessions(projectId), options.offset, options.offset + options.count - 1);
}

function pairsToHash(pairs: string[]): Record<string, string> {
  const hash: Record<string, string> = {};
  for (let i = 0; i + 1 < pairs.length; i += 2) hash[pairs[i]] = pairs[i + 1];
  return hash;
}

/**
 * The fields a listed Session and its filters need. Listing reads only these (HMGET), not the
 * stored browserSettings and proxies, which can be large: decoding Redis replies dominated the
 * list route's CPU profile (`npm run bench`).
 */
const LIST_FIELDS = [
  "id", "projectId", "principalId", "status", "createdAt", "updatedAt", "startedAt", "expiresAt",
  "endedAt", "timeoutSeconds", "keepAlive", "region", "proxyBytes", "contextId", "userMetadata",
] as const; // prettier-ignore

export type CreateOutcome =
  | { kind: "created"; liveCount: number }
  | { kind: "limited"; liveCount: number; earliestExpiresAt: number }
  | { kind: "replay"; fingerprint: string; sessionId: string };

export interface CreateRequest {
  record: SessionRecord;
  limit: number;
  now: number;
  retentionMs: number;
  /** Longest possible session life, so the list index keeps every id whose record may still exist. */
  maxLifetimeMs: number;
  /** Most sessions the project keeps listed and retrievable; past it the oldest ended ones go. Default 5000. */
  maxRetained?: number;
  idempotency?: { key: string; fingerprint: string; ttlMs: number };
}

export interface ListOptions {
  /** How many of the newest ids to skip. */
  offset: number;
  /** How many ids to read after those. */
  count: number;
}

/**
 * The session store on Redis. Every Redis failure (connection refused, timeout, failover) is
 * rethrown as a 503 DependencyError; logical outcomes are return values.
 */
export class SessionStore {
  private readonly commandTimeoutMs: number;
  private readonly compensationClient: () => Promise<RedisClient>;

  /**
   * `commandTimeoutMs`: the client's command timeout, which each script's deadline is made from.
   * `compensationClient`: the same connection without the wait for readiness, for undoing a create
   * that failed (queued while disconnected, sent on reconnect); default `client`.
   */
  constructor(
    private readonly client: () => Promise<RedisClient>,
    options: { commandTimeoutMs?: number; compensationClient?: () => Promise<RedisClient> } = {},
  ) {
    this.commandTimeoutMs = options.commandTimeoutMs ?? 500;
    this.compensationClient = options.compensationClient ?? client;
  }

  /** The deadline for a script sent now: after it, the caller has been answered 503. */
  private deadline(): number {
    return requestDeadline(this.commandTimeoutMs);
  }

  private async scripts(): Promise<ScriptClient> {
    return (await this.client()) as ScriptClient;
  }

  /** Creates a session atomically under the project's concurrency limit (one round trip). */
  async create(request: CreateRequest): Promise<CreateOutcome> {
    const { record, now } = request;
    const p = record.projectId;
    const idem = request.idempotency;
    const idemValue = idem ? `${idem.fingerprint}|${record.id}` : "";
    const result = await this.guard(async () =>
      (await this.scripts()).wcCreateSession(
        keys.session(p, record.id),
        keys.active(p),
        keys.sessions(p),
        keys.idempotency(p, idem?.key ?? ""),
        now,
        request.limit,
        record.id,
        record.expiresAt,
        record.expiresAt + request.retentionMs,
        now - request.retentionMs - request.maxLifetimeMs,
        idemValue,
        idem?.ttlMs ?? 0,
        this.deadline(),
        request.maxRetained ?? DEFAULT_MAX_RETAINED_SESSIONS,
        keys.session(p, ""),
        ...recordToFields(record),
      ),
    ).catch((error: unknown) => {
      // The caller is told 503: make sure that stays true if the script ran after all.
      this.voidCreate(record, idem?.key ?? "", idemValue);
      throw error;
    });
    const code = Number(result[0]);
    if (code === 3) throw pastDeadline();
    if (code === 1) return { kind: "created", liveCount: Number(result[1]) };
    if (code === 0)
      return { kind: "limited", liveCount: Number(result[1]), earliestExpiresAt: Number(result[2]) };
    const stored = String(result[1]);
    const bar = stored.lastIndexOf("|");
    return { kind: "replay", fingerprint: stored.slice(0, bar), sessionId: stored.slice(bar + 1) };
  }

  /** Sends the undo of a failed create without waiting for it (best effort; see VOID_SESSION_LUA). */
  private voidCreate(record: SessionRecord, idemKey: string, idemValue: string): void {
    const p = record.projectId;
    void this.compensationClient()
      .then((client) =>
        (client as ScriptClient).wcVoidSession(
          keys.session(p, record.id),
          keys.active(p),
          keys.sessions(p),
          keys.idempotency(p, idemKey),
          record.id,
          idemValue,
        ),
      )
      .catch(() => undefined);
  }

  /** One session of one project, or undefined (one round trip). */
  async get(projectId: string, id: string): Promise<SessionRecord | undefined> {
    const hash = await this.guard(async () => (await this.client()).hgetall(keys.session(projectId, id)));
    return fieldsToRecord(hash);
  }

  /** Ends a live session (one round trip); returns the record as it now is, or undefined. */
  async release(projectId: string, id: string, now: number): Promise<SessionRecord | undefined> {
    const pairs = await this.guard(async () =>
      (await this.scripts()).wcReleaseSession(
        keys.session(projectId, id),
        keys.active(projectId),
        now,
        SESSION_EVENTS_CHANNEL,
        this.deadline(),
      ),
    );
    return recordFromScript(pairs);
  }

  /** Marks a live session ERROR with a reason (used by the Proxy when its browser dies). */
  async fail(projectId: string, id: string, reason: string, now: number): Promise<SessionRecord | undefined> {
    const pairs = await this.guard(async () =>
      (await this.scripts()).wcFailSession(
        keys.session(projectId, id),
        keys.active(projectId),
        now,
        reason,
        SESSION_EVENTS_CHANNEL,
        this.deadline(),
      ),
    );
    return recordFromScript(pairs);
  }

  /**
   * The project's newest sessions, newest first, with the fields a listing shows (LIST_FIELDS):
   * one ZREVRANGE of the `sessions` index and one pipeline of HMGETs (all keys share the project's hash tag, so both hit one shard).
   */
  async listRecent(
    projectId: string,
    options: ListOptions,
  ): Promise<{ records: SessionRecord[]; idsRead: number }> {
    return this.guard(async () => {
      const client = await this.client();
      const ids = await newestIds(client, projectId, options);
      if (ids.length === 0) return { records: [], idsRead: 0 };
      return { records: await this.readListed(client, projectId, ids), idsRead: ids.length };
    });
  }

  /**
   * Like `listRecent`, but reads first only what the filter needs (status and expiry; the
   * metadata digest when there are clauses), and the listed fields only for the ids that may
   * match: at most `maxCandidates` of them. The caller checks candidates exactly.
   */
  async listFiltered(
    projectId: string,
    options: ListOptions & {
      now: number;
      status?: SessionStatus;
      clauses?: readonly MetadataClause[];
      maxCandidates: number;
    },
  ): Promise<{ records: SessionRecord[]; idsRead: number; exhausted: boolean }> {
    return this.guard(async () => {
      const client = await this.client();
      const ids = await newestIds(client, projectId, options);
      if (ids.length === 0) return { records: [], idsRead: 0, exhausted: false };
      const probe = client.pipeline();
      // The digest only when there are clauses: a status filter reads two short fields per session.
      const fields = options.clauses?.length
        ? ["status", "expiresAt", "metadataDigest"]
        : ["status", "expiresAt"];
      for (const id of ids) probe.hmget(keys.session(projectId, id), ...fields);
      const probed = (await probe.exec()) ?? [];
      const candidates: string[] = [];
      let exhausted = false;
      probed.forEach(([error, values], i) => {
        if (error) throw error;
        const [status, expiresAt, digest] = values as (string | null)[];
        if (status === null) return; // dropped or expired meanwhile
        if (options.status !== undefined) {
          const effective = effectiveStatus(
            { status: status as StoredStatus, expiresAt: Number(expiresAt) },
            options.now,
          );
          if (effective !== options.status) return;
        }
        if (options.clauses && !digestMayMatch(digest ?? undefined, options.clauses)) return;
        if (candidates.length === options.maxCandidates) {
          exhausted = true;
          return;
        }
        candidates.push(ids[i]);
      });
      return {
        records: await this.readListed(client, projectId, candidates),
        idsRead: ids.length,
        exhausted,
      };
    });
  }

  /** The listed fields (LIST_FIELDS) of the given sessions, in order, skipping any that are gone. */
  private async readListed(client: RedisClient, projectId: string, ids: string[]): Promise<SessionRecord[]> {
    if (ids.length === 0) return [];
    const pipeline = client.pipeline();
    for (const id of ids) pipeline.hmget(keys.session(projectId, id), ...LIST_FIELDS);
    const replies = (await pipeline.exec()) ?? [];
    const records: SessionRecord[] = [];
    for (const [error, values] of replies) {
      if (error) throw error;
      const hash: Record<string, string> = {};
      (values as (string | null)[]).forEach((value, i) => {
        if (value !== null) hash[LIST_FIELDS[i]] = value;
      });
      const record = fieldsToRecord(hash);
      if (record) records.push(record);
    }
    return records;
  }

  /** Resolves when Redis answers a PING (the health check); a 503 otherwise. */
  async ping(): Promise<void> {
    await this.guard(async () => (await this.client()).ping());
  }

  /** Live sessions of a project right now (expired ids are not counted). */
  async activeCount(projectId: string, now: number): Promise<number> {
    return this.guard(async () => (await this.client()).zcount(keys.active(projectId), `(${now}`, "+inf"));
  }

  private guard<T>(operation: () => Promise<T>): Promise<T> {
    return guardDependency("Redis", operation);
  }
}
