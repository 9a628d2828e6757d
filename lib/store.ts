import { Cluster } from "ioredis";
import { whenReady, type RedisClient } from "./redis";
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
  /** Usage of one UTC month (`YYYY-MM`): a hash of browserMinutes, proxyBytes, sessions. */
  usage: (projectId: string, month: string) => `wc:{${projectId}}:usage:${month}`,
  context: (projectId: string, id: string) => `wc:{${projectId}}:context:${id}`,
  contexts: (projectId: string) => `wc:{${projectId}}:contexts`,
  contextNames: (projectId: string) => `wc:{${projectId}}:context-names`,
  /** The wait queue (see END_SESSION_LUA): waiters by arrival. */
  queue: (projectId: string) => `wc:{${projectId}}:queue`,
  /** The list a granted waiter's BLPOP wakes on. */
  grant: (projectId: string, id: string) => `wc:{${projectId}}:grant:${id}`,
  /** Sessions handed to a waiter, by the epoch ms a client must have connected by. */
  connectBy: (projectId: string) => `wc:{${projectId}}:connect-by`,
  /** A token bucket of the project's request rate limits (`create`, `other`). */
  rate: (projectId: string, bucket: "create" | "other") => `wc:{${projectId}}:rate:${bucket}`,
};

/** How long a month's usage is kept after its last update: 400 days, so a year back is always there. */
export const USAGE_RETENTION_MS = 400 * 24 * 3600 * 1000;

/**
 * After a session that persists a context ends, how long its writer (the Proxy or the local
 * stand-in) has to write the profile back before another session may persist the context.
 */
export const CONTEXT_PERSIST_GRACE_MS = 120_000;

/** Most expired sessions one create or one sweep step ends (the rest on the next one). */
export const SWEEP_BATCH = 100;

/**
 * How long a slot handed to a waiting create stays promised to it: the waiter is woken at once and
 * claims it within milliseconds; a waiter whose function died meanwhile frees it after this.
 */
export const QUEUE_GRANT_TTL_MS = 5_000;

/** The errorReason of a session handed to a waiting create that no client connected to in time. */
export const NOT_CONNECTED_REASON = "no client connected by the connect deadline (connectBy)";

/** The UTC month (`YYYY-MM`) of an epoch-millisecond instant: the period usage is counted in. */
export function usageMonth(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(0, 7);
}

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

/**
 * The one step that ends a live session, used by every script that ends one (release, fail,
 * the timeout sweep and the create's pruning), so each ended session is counted exactly once:
 * only a RUNNING record changes, and the change and the count are in the same script.
 * Defines `end_session(record_key, active_key, status, ended_at, now, reason, prefixes)` where
 * prefixes = {usage = 'wc:{p}:usage:', context = 'wc:{p}:context:', channel = ...}. It
 * - writes status, endedAt, updatedAt (and errorReason) and removes the id from the active set;
 * - adds the session's minutes (whole minutes, rounded up, at least one) and its proxyBytes to
 *   the usage hash of the UTC month it ended in;
 * - when it persisted a context it still holds, gives the writer CONTEXT_PERSIST_GRACE_MS;
 * - publishes the event;
 * - hands the freed slot to the project's first waiter, if any (`grant_waiters`).
 * Also defines the wait queue's steps (all keys under the project's prefix, found from the
 * active key `wc:{p}:active`): `queue` (zset waiter id → arrival, Redis microseconds),
 * `queue:deadline` (waiter id → the epoch ms its wait ends), `queue:granted` (waiter id → the
 * epoch ms its promised slot lapses), `queue:limit` (the limit the waiters last brought) and one
 * list `grant:<id>` per granted waiter that its blocked BLPOP wakes on; and `take_token`, the token
 * bucket of the per-project rate limits.
 * Returns true when it ended the session, false when the record was not live (or is gone).
 */
export const END_SESSION_LUA = `
local function usage_month(ms)
  local z = math.floor(ms / 86400000) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d', y, m)
end
local function project_of(active_key) return string.sub(active_key, 1, -7) end
local function prune_queue(project, now)
  local queue, deadlines = project .. 'queue', project .. 'queue:deadline'
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', deadlines, '-inf', now)) do
    redis.call('ZREM', queue, id)
    redis.call('ZREM', deadlines, id)
  end
  redis.call('ZREMRANGEBYSCORE', project .. 'queue:granted', '-inf', now)
end
local function tidy_queue(project)
  if redis.call('EXISTS', project .. 'queue') == 0 then redis.call('DEL', project .. 'queue:limit') end
end
local function grant_waiters(project, active_key, now)
  local queue, granted = project .. 'queue', project .. 'queue:granted'
  if redis.call('EXISTS', queue) == 0 then return end
  prune_queue(project, now)
  local limit = tonumber(redis.call('GET', project .. 'queue:limit')) or 0
  local free = limit - redis.call('ZCOUNT', active_key, '(' .. now, '+inf') - redis.call('ZCARD', granted)
  while free > 0 do
    local head = redis.call('ZRANGE', queue, 0, 0)[1]
    if not head then break end
    redis.call('ZREM', queue, head)
    redis.call('ZREM', project .. 'queue:deadline', head)
    redis.call('ZADD', granted, now + ${QUEUE_GRANT_TTL_MS}, head)
    redis.call('PEXPIRE', granted, ${QUEUE_GRANT_TTL_MS * 2})
    local grant = project .. 'grant:' .. head
    redis.call('LPUSH', grant, now)
    redis.call('PEXPIRE', grant, ${QUEUE_GRANT_TTL_MS})
    free = free - 1
  end
  tidy_queue(project)
end
local function leave_queue(project, active_key, id, now)
  redis.call('ZREM', project .. 'queue', id)
  redis.call('ZREM', project .. 'queue:deadline', id)
  redis.call('DEL', project .. 'grant:' .. id)
  if redis.call('ZREM', project .. 'queue:granted', id) == 1 then grant_waiters(project, active_key, now) end
  tidy_queue(project)
end
local function take_token(bucket, now, rate, burst, cost)
  if rate <= 0 or cost <= 0 then return 0 end
  local state = redis.call('HMGET', bucket, 'tokens', 'at')
  local tokens = tonumber(state[1]) or burst
  local at = tonumber(state[2]) or now
  if now > at then
    tokens = math.min(burst, tokens + (now - at) * rate / 1000)
    at = now
  end
  if tokens < cost then return math.max(1, math.ceil((cost - tokens) * 1000 / rate)) end
  redis.call('HSET', bucket, 'tokens', tostring(tokens - cost), 'at', at)
  redis.call('PEXPIRE', bucket, math.ceil(burst * 1000 / rate) + 1000)
  return 0
end
local function end_session(record_key, active_key, status, ended_at, now, reason, prefixes)
  local r = redis.call('HMGET', record_key, 'id', 'status', 'startedAt', 'projectId', 'proxyBytes', 'contextId', 'contextPersist', 'updatedAt')
  if not r[1] or r[2] ~= 'RUNNING' then return false end
  local updated = math.max(tonumber(r[8]) or 0, ended_at)
  redis.call('HSET', record_key, 'status', status, 'endedAt', ended_at, 'updatedAt', updated)
  if reason ~= '' then redis.call('HSET', record_key, 'errorReason', reason) end
  redis.call('ZREM', active_key, r[1])
  local project = project_of(active_key)
  redis.call('ZREM', project .. 'connect-by', r[1])
  local minutes = math.max(1, math.ceil((ended_at - tonumber(r[3])) / 60000))
  local usage_key = prefixes.usage .. usage_month(ended_at)
  redis.call('HINCRBY', usage_key, 'browserMinutes', minutes)
  redis.call('HINCRBY', usage_key, 'proxyBytes', tonumber(r[5]) or 0)
  redis.call('HINCRBY', usage_key, 'sessions', 1)
  redis.call('PEXPIRE', usage_key, ${USAGE_RETENTION_MS})
  if r[6] and r[7] == '1' then
    local context_key = prefixes.context .. r[6]
    if redis.call('HGET', context_key, 'persistHolder') == r[1] then
      redis.call('HSET', context_key, 'persistUntil', now + ${CONTEXT_PERSIST_GRACE_MS})
    end
  end
  local event = {TIMED_OUT = 'timed_out', COMPLETED = 'released', ERROR = 'error'}
  redis.call('PUBLISH', prefixes.channel, cjson.encode({type = event[status], sessionId = r[1], projectId = r[4], at = ended_at}))
  grant_waiters(project, active_key, now)
  return true
end
local function sweep_expired(active_key, now, max, record_prefix, prefixes)
  local ended = 0
  local expired = redis.call('ZRANGEBYSCORE', active_key, '-inf', now, 'WITHSCORES', 'LIMIT', 0, max)
  for i = 1, #expired, 2 do
    local id = expired[i]
    if end_session(record_prefix .. id, active_key, 'TIMED_OUT', tonumber(expired[i + 1]), now, '', prefixes) then
      ended = ended + 1
    else
      redis.call('ZREM', active_key, id)
    end
  end
  local connect_by = project_of(active_key) .. 'connect-by'
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', connect_by, '-inf', now, 'LIMIT', 0, max)) do
    if not redis.call('HGET', record_prefix .. id, 'connectedAt') and
      end_session(record_prefix .. id, active_key, 'ERROR', now, now, '${NOT_CONNECTED_REASON}', prefixes) then
      ended = ended + 1
    end
    redis.call('ZREM', connect_by, id)
  end
  return ended, #expired / 2
end
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
 * Create, as one atomic script: replay an idempotent create, take a token from the project's
 * create bucket, end the project's expired sessions (at most SWEEP_BATCH, counting their usage),
 * check the context, then admit the session when the project has a free slot that no waiter was
 * promised, else queue a waiting caller or refuse.
 * KEYS: record, active, sessions, idempotency.
 * ARGV: now(1), limit(2), id(3), expiresAt(4), recordExpireAt(5), listCutoff(6), idemValue(7)
 * ('' = none), idemTtlMs(8), deadline(9), maxRetained(10), recordKeyPrefix(11), usagePrefix(12),
 * contextPrefix(13), channel(14), contextMode(15) ('' none, 'use', 'persist'), contextId(16),
 * waitUntil(17) (epoch ms; 0 = the caller does not wait), connectWindowMs(18), createRate(19)
 * (tokens per second; 0 = unlimited), createBurst(20), tokenCost(21) (1 on a request's first
 * attempt, 0 when a waiter checks again), field, value, ... (from 22).
 * A waiter is the session id itself: it is queued first come, first served; when a slot frees
 * (end_session, an expiry found here, a lapsed promise) the first waiter is promised it for
 * QUEUE_GRANT_TTL_MS and woken; its next attempt takes it, and the session then carries a connect
 * deadline (`connectBy`, indexed in `connect-by`). A caller that does not wait is admitted only
 * when live + promised < limit, so it never takes a promised slot.
 * Past `maxRetained` sessions in the project's list, the oldest that are not live are dropped
 * (record and list entry) in the same step, so one tenant's history cannot grow without bound.
 * A `persist` context is taken for this session until it ends plus CONTEXT_PERSIST_GRACE_MS (or
 * until its writer finishes): a second session that would persist it meanwhile is refused.
 * Returns {1, liveCount} created; {0, liveCount, earliestExpiresAt} at the limit; {2, storedIdemValue}
 * replay; {3} past the deadline (nothing written); {4} no such context; {5, holderSessionId} the
 * context is being persisted by another session; {6, position, nextChangeAt, liveCount} queued
 * (nextChangeAt: when a slot may free without anyone being told, 0 = none known); {7, retryAfterMs}
 * the create rate limit.
 */
export const CREATE_SESSION_LUA = `${DEADLINE_LUA}${END_SESSION_LUA}
if past_deadline(ARGV[9]) then return {3} end
local now = tonumber(ARGV[1])
local id = ARGV[3]
local project = project_of(KEYS[2])
local wait_until = tonumber(ARGV[17])
local waiting = wait_until > 0
local function refuse(reply)
  if waiting then leave_queue(project, KEYS[2], id, now) end
  return reply
end
if ARGV[7] ~= '' then
  local previous = redis.call('GET', KEYS[4])
  if previous then return refuse({2, previous}) end
end
local retry_ms = take_token(project .. 'rate:create', now, tonumber(ARGV[19]), tonumber(ARGV[20]), tonumber(ARGV[21]))
if retry_ms > 0 then return refuse({7, retry_ms}) end
local limit_key = project .. 'queue:limit'
if waiting then
  redis.call('SET', limit_key, ARGV[2], 'PX', math.max(1, wait_until - now) + ${QUEUE_GRANT_TTL_MS * 2})
elseif redis.call('EXISTS', limit_key) == 1 then
  redis.call('SET', limit_key, ARGV[2], 'KEEPTTL')
end
local prefixes = {usage = ARGV[12], context = ARGV[13], channel = ARGV[14]}
sweep_expired(KEYS[2], now, ${SWEEP_BATCH}, ARGV[11], prefixes)
local context_key = ARGV[13] .. ARGV[16]
if ARGV[15] ~= '' then
  if redis.call('EXISTS', context_key) == 0 then return refuse({4}) end
  if ARGV[15] == 'persist' then
    local lock = redis.call('HMGET', context_key, 'persistHolder', 'persistUntil')
    if lock[1] and lock[1] ~= id and tonumber(lock[2]) > now then return refuse({5, lock[1]}) end
  end
end
-- A slot that freed without an end_session (an expiry, a lapsed promise) goes to the queue first.
grant_waiters(project, KEYS[2], now)
local granted_key = project .. 'queue:granted'
local promised = waiting and tonumber(redis.call('ZSCORE', granted_key, id))
local from_queue = promised ~= nil and promised ~= false and promised > now
local live = redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')
if from_queue then
  redis.call('ZREM', granted_key, id)
  redis.call('DEL', project .. 'grant:' .. id)
  tidy_queue(project)
else
  -- grant_waiters pruned the queue if there is one; promises can outlive it.
  redis.call('ZREMRANGEBYSCORE', granted_key, '-inf', now)
  if live + redis.call('ZCARD', granted_key) >= tonumber(ARGV[2]) then
    if waiting and now < wait_until then
      local queue = project .. 'queue'
      if not redis.call('ZSCORE', queue, id) then
        redis.call('ZADD', queue, tonumber(clock[1]) * 1000000 + tonumber(clock[2]), id)
      end
      redis.call('ZADD', project .. 'queue:deadline', wait_until, id)
      local keep = math.max(1, wait_until - now) + ${QUEUE_GRANT_TTL_MS * 2}
      if redis.call('PTTL', queue) < keep then
        redis.call('PEXPIRE', queue, keep)
        redis.call('PEXPIRE', project .. 'queue:deadline', keep)
      end
      local next_change = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)[2]
      local next_lapse = redis.call('ZRANGE', granted_key, 0, 0, 'WITHSCORES')[2]
      if next_lapse and (not next_change or tonumber(next_lapse) < tonumber(next_change)) then next_change = next_lapse end
      return {6, redis.call('ZRANK', queue, id) + 1, next_change or 0, live}
    end
    local first = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    return refuse({0, live, first[2] or now})
  end
  if waiting then leave_queue(project, KEYS[2], id, now) end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 22))
if from_queue then
  local connect_by = now + tonumber(ARGV[18])
  redis.call('HSET', KEYS[1], 'connectBy', connect_by)
  redis.call('ZADD', project .. 'connect-by', connect_by, id)
end
redis.call('PEXPIREAT', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[4], id)
redis.call('ZADD', KEYS[3], now, id)
if ARGV[15] == 'persist' then
  redis.call('HSET', context_key, 'persistHolder', id, 'persistUntil', tonumber(ARGV[4]) + ${CONTEXT_PERSIST_GRACE_MS})
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[6])
local listed = redis.call('ZCARD', KEYS[3])
local excess = listed - tonumber(ARGV[10])
if excess > 0 then
  -- Only ended sessions may go: every live one is in active (a subset of the list), so the count
  -- of ended ones is the difference. A project whose list is all live sessions walks nothing.
  excess = math.min(excess, listed - redis.call('ZCARD', KEYS[2]))
end
if excess > 0 then
  -- The oldest first; a live session (still in active) is never dropped. At most 100 go per
  -- create and 115 are looked at, so a project holding more live sessions than it may retain does
  -- not make every create walk its whole list (the seeding of 20,000 live sessions took minutes).
  local dropped = 0
  excess = math.min(excess, 100)
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
 * was told, so it is removed again (with the context it took, and its place or promised slot in
 * the wait queue, which goes to the next waiter). Sent on the same connection right after the
 * failure, so it runs after the create if the create runs at all. Harmless when the create never
 * ran. KEYS: record, active, sessions, idempotency. ARGV: id, idemValue ('' = none), contextKey
 * ('' = none), now.
 */
export const VOID_SESSION_LUA = `${END_SESSION_LUA}
if redis.call('HGET', KEYS[1], 'id') == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[2] ~= '' and redis.call('GET', KEYS[4]) == ARGV[2] then redis.call('DEL', KEYS[4]) end
if ARGV[3] ~= '' and redis.call('HGET', ARGV[3], 'persistHolder') == ARGV[1] then
  redis.call('HDEL', ARGV[3], 'persistHolder', 'persistUntil')
end
local project = project_of(KEYS[2])
redis.call('ZREM', project .. 'connect-by', ARGV[1])
leave_queue(project, KEYS[2], ARGV[1], tonumber(ARGV[4]))
grant_waiters(project, KEYS[2], tonumber(ARGV[4]))
return 1
`;

/**
 * A waiter leaves the queue (its client went away): its place goes, and a slot it was promised
 * goes to the next waiter. KEYS: active. ARGV: id, now.
 */
export const LEAVE_QUEUE_LUA = `${END_SESSION_LUA}
leave_queue(project_of(KEYS[1]), KEYS[1], ARGV[1], tonumber(ARGV[2]))
return 1
`;

/**
 * The connect host admitted a client: records the first connect and lifts the connect deadline.
 * KEYS: record, connect-by. ARGV: id, now. Returns 1 when the session is live, else 0.
 */
export const MARK_CONNECTED_LUA = `
if redis.call('HGET', KEYS[1], 'status') ~= 'RUNNING' then return 0 end
redis.call('HSETNX', KEYS[1], 'connectedAt', ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`;

/**
 * Takes one token from a project's request bucket (the routes other than create). KEYS: bucket.
 * ARGV: now, rate (tokens per second), burst. Returns 0 when admitted, else the ms until a token.
 */
export const TAKE_TOKEN_LUA = `${END_SESSION_LUA}
return take_token(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), 1)
`;

/**
 * Release, as one atomic script: a live RUNNING session becomes COMPLETED at `now`; a RUNNING
 * session already past expiresAt becomes TIMED_OUT at expiresAt (the sweep had not reached it);
 * either way through end_session, so it is counted once. An ended session is left unchanged.
 * KEYS: record, active. ARGV: now, channel, deadline, usagePrefix, contextPrefix. Returns the
 * record's fields, nil when it does not exist, or PAST_DEADLINE (nothing changed).
 */
export const RELEASE_SESSION_LUA = `${DEADLINE_LUA}${END_SESSION_LUA}
if past_deadline(ARGV[3]) then return '${PAST_DEADLINE}' end
local record = redis.call('HMGET', KEYS[1], 'id', 'expiresAt')
if not record[1] then return false end
local now = tonumber(ARGV[1])
local prefixes = {usage = ARGV[4], context = ARGV[5], channel = ARGV[2]}
if tonumber(record[2]) > now then
  end_session(KEYS[1], KEYS[2], 'COMPLETED', now, now, '', prefixes)
else
  end_session(KEYS[1], KEYS[2], 'TIMED_OUT', tonumber(record[2]), now, '', prefixes)
end
return redis.call('HGETALL', KEYS[1])
`;

/**
 * Marks a live session ERROR (the Proxy calls this when its browser dies); past expiresAt it
 * has TIMED_OUT instead. KEYS: record, active. ARGV: now, reason, channel, deadline, usagePrefix,
 * contextPrefix.
 */
export const FAIL_SESSION_LUA = `${DEADLINE_LUA}${END_SESSION_LUA}
if past_deadline(ARGV[4]) then return '${PAST_DEADLINE}' end
local record = redis.call('HMGET', KEYS[1], 'id', 'expiresAt')
if not record[1] then return false end
local now = tonumber(ARGV[1])
local prefixes = {usage = ARGV[5], context = ARGV[6], channel = ARGV[3]}
if tonumber(record[2]) > now then
  end_session(KEYS[1], KEYS[2], 'ERROR', now, now, ARGV[2], prefixes)
else
  end_session(KEYS[1], KEYS[2], 'TIMED_OUT', tonumber(record[2]), now, '', prefixes)
end
return redis.call('HGETALL', KEYS[1])
`;

/**
 * The timeout sweep of one project: ends (TIMED_OUT at expiresAt, counted) up to ARGV[2] of its
 * sessions whose expiresAt has passed. KEYS: active. ARGV: now, max, recordPrefix, usagePrefix,
 * contextPrefix, channel, deadline. Returns {ended, examined} or {-1} past the deadline.
 */
export const SWEEP_EXPIRED_LUA = `${DEADLINE_LUA}${END_SESSION_LUA}
if past_deadline(ARGV[7]) then return {-1} end
local ended, examined = sweep_expired(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3],
  {usage = ARGV[4], context = ARGV[5], channel = ARGV[6]})
return {ended, examined}
`;

type ScriptClient = RedisClient & {
  wcCreateSession(...args: (string | number)[]): Promise<[number, ...(string | number)[]]>;
  wcReleaseSession(...args: (string | number)[]): Promise<string[] | string | null>;
  wcFailSession(...args: (string | number)[]): Promise<string[] | string | null>;
  wcVoidSession(...args: (string | number)[]): Promise<number>;
  wcSweepExpired(...args: (string | number)[]): Promise<number[]>;
  wcLeaveQueue(...args: (string | number)[]): Promise<number>;
  wcMarkConnected(...args: (string | number)[]): Promise<number>;
  wcTakeToken(...args: (string | number)[]): Promise<number>;
};

/** Registers the store's scripts on a client (EVALSHA with EVAL fallback). Call once per client. */
export function defineSessionScripts(client: RedisClient): void {
  client.defineCommand("wcCreateSession", { numberOfKeys: 4, lua: CREATE_SESSION_LUA });
  client.defineCommand("wcReleaseSession", { numberOfKeys: 2, lua: RELEASE_SESSION_LUA });
  client.defineCommand("wcFailSession", { numberOfKeys: 2, lua: FAIL_SESSION_LUA });
  client.defineCommand("wcVoidSession", { numberOfKeys: 4, lua: VOID_SESSION_LUA });
  client.defineCommand("wcSweepExpired", { numberOfKeys: 1, lua: SWEEP_EXPIRED_LUA });
  client.defineCommand("wcLeaveQueue", { numberOfKeys: 1, lua: LEAVE_QUEUE_LUA });
  client.defineCommand("wcMarkConnected", { numberOfKeys: 2, lua: MARK_CONNECTED_LUA });
  client.defineCommand("wcTakeToken", { numberOfKeys: 1, lua: TAKE_TOKEN_LUA });
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
  if (record.contextPersist) fields.push("contextPersist", "1");
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
  if (record.connectBy !== undefined) fields.push("connectBy", String(record.connectBy));
  if (record.connectedAt !== undefined) fields.push("connectedAt", String(record.connectedAt));
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
  if (hash.contextPersist === "1") record.contextPersist = true;
  if (hash.extensionId) record.extensionId = hash.extensionId;
  if (hash.userMetadata) record.userMetadata = JSON.parse(hash.userMetadata);
  if (hash.browserSettings) record.browserSettings = JSON.parse(hash.browserSettings);
  if (hash.proxies) record.proxiesEncrypted = hash.proxies;
  if (hash.errorReason) record.errorReason = hash.errorReason;
  if (hash.connectBy) record.connectBy = Number(hash.connectBy);
  if (hash.connectedAt) record.connectedAt = Number(hash.connectedAt);
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

/** What the create script does with the record's context: nothing, read it, or take it to persist. */
function contextMode(record: SessionRecord): "" | "use" | "persist" {
  if (record.contextId === undefined) return "";
  return record.contextPersist ? "persist" : "use";
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
  | { kind: "replay"; fingerprint: string; sessionId: string }
  /** The record names a context that does not exist (or was deleted meanwhile). */
  | { kind: "no-context" }
  /** The record would persist a context another session is persisting. */
  | { kind: "context-busy"; holderSessionId: string }
  /**
   * The caller waits (`wait`) and is queued at `position` (1 = next). `nextChangeAt`: when a slot
   * may free without anyone being told (an expiry, a lapsed promise); 0 when none is known.
   */
  | { kind: "queued"; position: number; nextChangeAt: number; liveCount: number }
  /** The project's create rate limit: a token is available in `retryAfterMs`. */
  | { kind: "rate-limited"; retryAfterMs: number };

/** A token bucket: `perSecond` tokens a second, at most `burst` saved up. */
export interface RateLimit {
  perSecond: number;
  burst: number;
}

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
  /**
   * The caller waits for a slot until `until` (epoch ms): at the limit it is queued instead of
   * refused. A session it gets from the queue must be connected to within `connectWindowMs`.
   */
  wait?: { until: number; connectWindowMs: number };
  /** The project's create bucket, and whether this attempt takes a token (a waiter's re-checks do not). */
  rate?: RateLimit & { takeToken: boolean };
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

  /**
   * Connections for a waiter's blocking BLPOP, which holds its connection for the whole wait:
   * made from the store's client without its command timeout, kept for the next waiter.
   */
  private readonly idleBlocking: RedisClient[] = [];

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
        keys.usage(p, ""),
        keys.context(p, ""),
        SESSION_EVENTS_CHANNEL,
        contextMode(record),
        record.contextId ?? "",
        request.wait?.until ?? 0,
        request.wait?.connectWindowMs ?? 0,
        request.rate?.perSecond ?? 0,
        request.rate?.burst ?? 0,
        request.rate?.takeToken === false ? 0 : 1,
        ...recordToFields(record),
      ),
    ).catch((error: unknown) => {
      // The caller is told 503: make sure that stays true if the script ran after all.
      this.voidCreate(record, idem?.key ?? "", idemValue);
      throw error;
    });
    const code = Number(result[0]);
    if (code === 3) throw pastDeadline();
    if (code === 4) return { kind: "no-context" };
    if (code === 5) return { kind: "context-busy", holderSessionId: String(result[1]) };
    if (code === 1) return { kind: "created", liveCount: Number(result[1]) };
    if (code === 0)
      return { kind: "limited", liveCount: Number(result[1]), earliestExpiresAt: Number(result[2]) };
    if (code === 6) {
      return {
        kind: "queued",
        position: Number(result[1]),
        nextChangeAt: Number(result[2]),
        liveCount: Number(result[3]),
      };
    }
    if (code === 7) return { kind: "rate-limited", retryAfterMs: Number(result[1]) };
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
          record.contextPersist && record.contextId ? keys.context(p, record.contextId) : "",
          Date.now(),
        ),
      )
      .catch(() => undefined);
  }

  /**
   * Blocks until the waiter `id` is promised a slot (its grant list gets an entry), `waitMs`
   * passes, or `signal` aborts (the client went away). Woken by the script that frees
   * the slot, not by polling: one BLPOP per wait. A failed or stalled connection ends the wait
   * early ("timeout"): the caller's next create attempt tells it where it stands.
   */
  async waitForGrant(
    projectId: string,
    id: string,
    durationMs: number,
    signal?: AbortSignal,
  ): Promise<"granted" | "timeout" | "aborted"> {
    if (signal?.aborted) return "aborted";
    const waitMs = Math.max(10, Math.round(durationMs));
    const connection = await this.guard(() => this.blockingConnection());
    if (signal?.aborted) {
      // Aborted while the connection was being made: it was never blocked, so it can be kept.
      if (this.idleBlocking.length < 8) this.idleBlocking.push(connection);
      else connection.disconnect();
      return "aborted";
    }
    const drop = () => connection.disconnect();
    signal?.addEventListener("abort", drop, { once: true });
    // BLPOP times out in Redis; this ends a wait whose reply never comes (a stalled Redis).
    const stalled = setTimeout(drop, waitMs + this.commandTimeoutMs + 1000);
    let reusable = false;
    try {
      const reply = await connection.blpop(keys.grant(projectId, id), waitMs / 1000);
      reusable = true;
      return reply ? "granted" : "timeout";
    } catch {
      return signal?.aborted ? "aborted" : "timeout";
    } finally {
      clearTimeout(stalled);
      signal?.removeEventListener("abort", drop);
      if (reusable && connection.status === "ready" && this.idleBlocking.length < 8) {
        this.idleBlocking.push(connection);
      } else {
        connection.disconnect();
      }
    }
  }

  private async blockingConnection(): Promise<RedisClient> {
    for (let idle = this.idleBlocking.pop(); idle; idle = this.idleBlocking.pop()) {
      if (idle.status === "ready") return idle;
      idle.disconnect();
    }
    const base = await this.client();
    const connection =
      base instanceof Cluster
        ? base.duplicate(undefined, {
            redisOptions: { ...base.options.redisOptions, commandTimeout: undefined },
          })
        : base.duplicate({ commandTimeout: undefined });
    // A failure shows as the BLPOP's rejection; without a listener ioredis would print each one.
    connection.on("error", () => undefined);
    try {
      return await whenReady(connection, Math.max(1000, this.commandTimeoutMs));
    } catch (error) {
      connection.disconnect();
      throw error;
    }
  }

  /** Closes the connections kept for waiters (the local stack's shutdown). */
  closeIdleConnections(): void {
    for (const connection of this.idleBlocking.splice(0)) connection.disconnect();
  }

  /** A waiter leaves the queue (its client went away); a slot it was promised goes to the next. */
  async leaveQueue(projectId: string, id: string, now: number): Promise<void> {
    await this.guard(async () => (await this.scripts()).wcLeaveQueue(keys.active(projectId), id, now));
  }

  /**
   * The connect host admitted a client to the session: records the first connect and lifts its
   * connect deadline. False when the session is not live.
   */
  async markConnected(projectId: string, id: string, now: number): Promise<boolean> {
    const live = await this.guard(async () =>
      (await this.scripts()).wcMarkConnected(keys.session(projectId, id), keys.connectBy(projectId), id, now),
    );
    return Number(live) === 1;
  }

  /**
   * Takes a token from the project's bucket for the routes other than create; returns 0 when the
   * request may go on, else the ms until a token is available.
   */
  async takeToken(projectId: string, limit: RateLimit, now: number): Promise<number> {
    const wait = await this.guard(async () =>
      (await this.scripts()).wcTakeToken(keys.rate(projectId, "other"), now, limit.perSecond, limit.burst),
    );
    return Number(wait);
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
        keys.usage(projectId, ""),
        keys.context(projectId, ""),
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
        keys.usage(projectId, ""),
        keys.context(projectId, ""),
      ),
    );
    return recordFromScript(pairs);
  }

  /**
   * Ends every session of the project whose expiresAt has passed (TIMED_OUT, counted in usage),
   * in steps of SWEEP_BATCH; returns how many it ended. The scheduled sweep calls this for every
   * project, so a timed-out session is counted even if nobody reads it.
   */
  async sweepExpired(projectId: string, now: number): Promise<number> {
    let total = 0;
    for (;;) {
      const [ended, examined] = await this.guard(async () =>
        (await this.scripts()).wcSweepExpired(
          keys.active(projectId),
          now,
          SWEEP_BATCH,
          keys.session(projectId, ""),
          keys.usage(projectId, ""),
          keys.context(projectId, ""),
          SESSION_EVENTS_CHANNEL,
          this.deadline(),
        ),
      );
      if (Number(ended) === -1) throw pastDeadline();
      total += Number(ended);
      if (Number(examined) < SWEEP_BATCH) return total;
    }
  }

  /** The project's usage in one UTC month (`YYYY-MM`): zeros for a month with no ended session. */
  async usage(
    projectId: string,
    month: string,
  ): Promise<{ browserMinutes: number; proxyBytes: number; sessions: number }> {
    const hash = await this.guard(async () => (await this.client()).hgetall(keys.usage(projectId, month)));
    return {
      browserMinutes: Number(hash.browserMinutes ?? 0),
      proxyBytes: Number(hash.proxyBytes ?? 0),
      sessions: Number(hash.sessions ?? 0),
    };
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
      /** Read these ids (newest first) instead of the project's list (see `liveIdsNewestFirst`). */
      ids?: readonly string[];
    },
  ): Promise<{ records: SessionRecord[]; idsRead: number; exhausted: boolean }> {
    return this.guard(async () => {
      const client = await this.client();
      const ids =
        options.ids?.slice(options.offset, options.offset + options.count) ??
        (await newestIds(client, projectId, options));
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

  /**
   * The ids of the project's live sessions, newest first, read from the active set (however many
   * ended sessions are newer): one ZRANGEBYSCORE and one ZMSCORE of their creation times. At most
   * `max` of them (the newest).
   */
  async liveIdsNewestFirst(projectId: string, now: number, max: number): Promise<string[]> {
    return this.guard(async () => {
      const client = await this.client();
      const ids = await client.zrangebyscore(keys.active(projectId), `(${now}`, "+inf");
      if (ids.length === 0) return [];
      const created = await client.zmscore(keys.sessions(projectId), ...ids);
      return ids
        .map((id, i) => ({ id, at: Number(created[i] ?? 0) }))
        .sort((a, b) => b.at - a.at || (a.id < b.id ? 1 : -1))
        .slice(0, max)
        .map((entry) => entry.id);
    });
  }

  /** Live sessions of a project right now (expired ids are not counted). */
  async activeCount(projectId: string, now: number): Promise<number> {
    return this.guard(async () => (await this.client()).zcount(keys.active(projectId), `(${now}`, "+inf"));
  }

  private guard<T>(operation: () => Promise<T>): Promise<T> {
    return guardDependency("Redis", operation);
  }
}
