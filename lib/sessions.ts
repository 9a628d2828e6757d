import { hash as digest, randomUUID } from "node:crypto";
import {
  authenticate,
  parseApiKeySet,
  type ApiKeyDirectory,
  type Principal,
  type ProjectDefaults,
} from "./apikeys";
import { SESSION_TIMEOUT_MAX_SECONDS, type RuntimeConfig } from "./config";
import { BadRequestError, ConflictError, HttpError, NotFoundError, TooManyRequestsError } from "./errors";
import { apiKeyFrom, withErrorHandling, type HttpEvent, type HttpHandler, type HttpResult } from "./http";
import type { Logger } from "./logger";
import type { Metrics } from "./metrics";
import type { SecretCache } from "./secrets";
import type { CreateSessionBody } from "./schemas";
import {
  effectiveStatus,
  toSessionView,
  UUID_PATTERN,
  type SessionRecord,
  type SessionStatus,
  type SessionView,
} from "./session";
import { checkSessionExtension, type ExtensionStore } from "./extensions";
import type { ObjectStore } from "./objects";
import type { ContextStore, ContextUploadUrl } from "./contexts";
import type { SessionFileStore } from "./session-files";
import { matchesMetadata, type MetadataClause } from "./query";
import { recordToFields, type CreateOutcome, type SessionStore } from "./store";
import { encryptForProxy, mintSessionToken, parseTokenKeySet, type TokenKeySet } from "./tokens";

/** What the session operations need; tests swap any part. */
export interface SessionDeps {
  config: RuntimeConfig;
  store: SessionStore;
  secrets: SecretCache;
  logger: Logger;
  /** Epoch milliseconds. */
  now: () => number;
  newId: () => string;
  /** Extension metadata (Redis). */
  extensions: ExtensionStore;
  /** The object store; undefined when OBJECT_STORE is not configured (the extension routes then refuse to start). */
  objects?: ObjectStore;
  /** Pages of live sessions, where the connect host can tell (the local stack); else debug lists none. */
  pages?: PageLister;
  /** Context metadata (Redis). */
  contexts: ContextStore;
  /** A session's uploads, downloads and CDP log; undefined without OBJECT_STORE. */
  sessionFiles?: SessionFileStore;
  /**
   * Where a context archive is uploaded: the local stack's own endpoint. Unset deployed, where
   * the object store presigns an S3 PUT.
   */
  contextUploadUrl?: ContextUploadUrl;
  /** Per-session metrics (sessions created, refused, ended, queue waits); none when absent. */
  metrics?: Metrics;
}

export const newSessionId = (): string => randomUUID();

/** Resolves the presented API key to its principal (401 when missing, malformed or unknown). */
export async function authenticateKey(presented: string | undefined, deps: SessionDeps): Promise<Principal> {
  const principal = authenticate(presented, await keyDirectory(deps), projectDefaults(deps.config));
  // Every later line of the request, its access line included, names the project (never the key).
  deps.logger.appendKeys?.({ projectId: principal.projectId });
  return principal;
}

/**
 * Where a request's pending token from its project's request bucket is kept: on the event itself
 * (not enumerable), since module-level state such as a WeakMap does not survive the serialization
 * of a function into its Lambda package.
 */
const ADMISSION = "__wcRequestAdmission";
type AdmittedEvent = HttpEvent & { [ADMISSION]?: Promise<void> };

/**
 * Authenticates a request to a route other than create and takes a token from its project's
 * request bucket. The token's round trip runs alongside the route's own Redis work: a route
 * awaits `requestAdmitted(event)` before it changes anything, and `withRequestLimit` before it
 * answers, so a refused request changes nothing and reads nothing out. A request without a valid
 * key is refused before Redis is asked.
 */
export async function authenticateRequest(event: HttpEvent, deps: SessionDeps): Promise<Principal> {
  const principal = await authenticateKey(apiKeyFrom(event), deps);
  const limit = principal.rateLimits?.requests;
  if (limit && limit.perSecond > 0) {
    const admission = deps.store.takeToken(principal.projectId, limit, deps.now()).then((waitMs) => {
      if (waitMs > 0) throw rateLimited(principal.projectId, "sending requests", limit, waitMs, deps);
    });
    // Awaited later (requestAdmitted); a rejection must not count as unhandled meanwhile.
    admission.catch(() => undefined);
    Object.defineProperty(event, ADMISSION, { value: admission, enumerable: false, configurable: true });
  }
  return principal;
}

/** The 429 of a project's token bucket that ran dry (`what` it was doing too fast), counted in RateLimited. */
function rateLimited(
  projectId: string,
  what: string,
  limit: { perSecond: number; burst: number } | undefined,
  waitMs: number,
  deps: Pick<SessionDeps, "metrics">,
): TooManyRequestsError {
  deps.metrics?.count("RateLimited", 1, { projectId });
  const retryAfter = Math.max(1, Math.ceil(waitMs / 1000));
  return new TooManyRequestsError(
    `project ${projectId} is ${what} faster than its rate limit of ` +
      `${limit?.perSecond} a second (bursts of ${limit?.burst}); retry in ${retryAfter} s`,
    retryAfter,
    { shouldRetry: true },
  );
}

/** Resolves when the request's token was granted; rejects with the 429 when it was refused. */
export function requestAdmitted(event: HttpEvent): Promise<void> {
  return (event as AdmittedEvent)[ADMISSION] ?? Promise.resolve();
}

/**
 * `withErrorHandling` for the routes that use `authenticateRequest`: the answer waits for the
 * request's token, and a refusal replaces whatever the route answered.
 */
export function withRequestLimit(deps: Pick<SessionDeps, "logger">, handler: HttpHandler): HttpHandler {
  return withErrorHandling(deps.logger, async (event, context) => {
    let result: HttpResult;
    try {
      result = await handler(event, context);
    } catch (error) {
      await requestAdmitted(event);
      throw error;
    }
    await requestAdmitted(event);
    return result;
  });
}

/** The API-key secret, parsed once per fetched value. */
export function keyDirectory(deps: SessionDeps): Promise<ApiKeyDirectory> {
  return deps.secrets.getParsed(deps.config.apiKeysSecretRef, parseApiKeySet);
}

/** What a project's missing fields default to. */
export function projectDefaults(config: RuntimeConfig): ProjectDefaults {
  return {
    concurrency: config.defaultConcurrency,
    defaultTimeout: config.defaultTimeoutSeconds,
    rateLimits: config.rateLimits,
  };
}

export async function tokenKeys(deps: SessionDeps): Promise<TokenKeySet> {
  return deps.secrets.getParsed(deps.config.tokenKeysSecretRef, parseTokenKeySet);
}

/** A body's `projectId`, when given, must be the key's own project (the message reveals nothing else). */
export function checkProjectId(principal: Principal, projectId: string | undefined): void {
  if (projectId !== undefined && projectId !== principal.projectId) {
    throw new BadRequestError("projectId does not match this API key");
  }
}

export interface CreatedSession extends SessionView {
  connectUrl: string;
  seleniumRemoteUrl: string;
  signingKey: string;
}

export interface CreateResult {
  session: CreatedSession;
  /** True when an earlier create with the same Idempotency-Key is being answered again. */
  replayed: boolean;
}

export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

/** SHA-256 of the body with object keys sorted, so a retry that re-serializes the body still matches. */
export function bodyFingerprint(body: unknown): string {
  return digest("sha256", canonicalJson(body), "base64url");
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return "[" + value.map(canonicalJson).join(",") + "]";
  if (value && typeof value === "object") {
    const entries = Object.keys(value)
      .sort()
      .map((key) => JSON.stringify(key) + ":" + canonicalJson((value as Record<string, unknown>)[key]));
    return "{" + entries.join(",") + "}";
  }
  return JSON.stringify(value) ?? "null";
}

/** The connect host's URLs for a session; the token rides in the query string. */
export function connectUrls(config: RuntimeConfig, sessionId: string, token: string) {
  const httpScheme = config.connectScheme === "wss" ? "https" : "http";
  return {
    connectUrl: `${config.connectScheme}://${config.connectHost}/v1/sessions/${sessionId}/connect?signingKey=${token}`,
    seleniumRemoteUrl: `${httpScheme}://${config.connectHost}/webdriver`,
  };
}

async function withConnection(
  record: SessionRecord,
  keySet: TokenKeySet,
  deps: SessionDeps,
  now: number,
): Promise<CreatedSession> {
  const signingKey = await mintSessionToken(
    keySet,
    {
      sessionId: record.id,
      projectId: record.projectId,
      principalId: record.principalId,
      scope: "connect",
      expiresAt: record.expiresAt / 1000,
      now: Math.floor(now / 1000),
    },
    { issuer: deps.config.tokenIssuer, audience: deps.config.tokenAudience },
  );
  return { ...toSessionView(record, now), ...connectUrls(deps.config, record.id, signingKey), signingKey };
}

export interface CreateOptions {
  /** How long the create may wait for a slot at the limit (`Prefer: wait`, already capped); 0 = refuse at once. */
  waitSeconds?: number;
  /** Aborts a wait when the client goes away. */
  signal?: AbortSignal;
}

/**
 * The longest one blocked wait lasts before the waiter looks again. Waking is driven by the
 * script that frees a slot; this only bounds a wake-up that was missed (a limit raised in the
 * secret, a lost connection), at one BLPOP and one script per waiter every few seconds.
 */
export const MAX_BLOCK_MS = 5_000;

/**
 * Creates a session for `principal`: validates what the schema cannot, writes the record under
 * the project's concurrency limit in one atomic step, and mints its connect token.
 */
export async function createSession(
  principal: Principal,
  body: CreateSessionBody,
  idempotencyKey: string | undefined,
  deps: SessionDeps,
  options: CreateOptions = {},
): Promise<CreateResult> {
  const { config } = deps;
  checkProjectId(principal, body.projectId);
  if (body.region !== undefined && config.region !== "local" && body.region !== config.region) {
    throw new BadRequestError(
      `region ${body.region} is not served by this deployment; it runs in ${config.region}`,
    );
  }
  if (body.userMetadata !== undefined) {
    const size = Buffer.byteLength(JSON.stringify(body.userMetadata));
    if (size > config.maxUserMetadataBytes) {
      throw new BadRequestError(
        `userMetadata is ${size} bytes of JSON; the limit is ${config.maxUserMetadataBytes} bytes`,
      );
    }
  }
  if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY_PATTERN.test(idempotencyKey)) {
    throw new BadRequestError("Idempotency-Key must be 1 to 255 printable ASCII characters without spaces");
  }

  const keySet = await tokenKeys(deps);
  const now = deps.now();
  const timeoutSeconds = body.timeout ?? principal.defaultTimeout;
  const record: SessionRecord = {
    id: deps.newId(),
    projectId: principal.projectId,
    principalId: principal.principalId,
    status: "RUNNING",
    createdAt: now,
    updatedAt: now,
    startedAt: now,
    // Rounded up to a whole second: the token's `exp` (seconds) then equals expiresAt exactly.
    expiresAt: Math.ceil((now + timeoutSeconds * 1000) / 1000) * 1000,
    timeoutSeconds,
    keepAlive: body.keepAlive ?? false,
    region: config.region,
    proxyBytes: 0,
  };
  const context = body.browserSettings?.context;
  if (context !== undefined) {
    const contextId = context.id.trim().toLowerCase();
    // Context ids are UUIDs: anything else cannot name one (the script checks that it exists).
    if (!UUID_PATTERN.test(contextId)) throw contextNotInProject(context.id);
    record.contextId = contextId;
    if (context.persist === true) record.contextPersist = true;
  }
  const extensionId = body.extensionId ?? body.browserSettings?.extensionId;
  if (
    body.extensionId !== undefined &&
    body.browserSettings?.extensionId !== undefined &&
    body.extensionId !== body.browserSettings.extensionId
  ) {
    throw new BadRequestError(
      "extensionId and browserSettings.extensionId name different extensions; give one",
    );
  }
  if (extensionId !== undefined) {
    record.extensionId = await checkSessionExtension(principal.projectId, extensionId, deps);
  }
  if (body.userMetadata !== undefined) record.userMetadata = body.userMetadata;
  if (body.browserSettings !== undefined) record.browserSettings = body.browserSettings;
  if (body.proxies !== undefined && body.proxies !== false) {
    record.proxiesEncrypted = await encryptForProxy(keySet, {
      proxies: body.proxies,
      proxySettings: body.proxySettings,
    });
  }

  const recordBytes = storedBytes(record);
  if (recordBytes > config.maxRecordBytes) {
    throw new BadRequestError(
      `the session would store ${recordBytes} bytes (userMetadata, browserSettings and proxies together); ` +
        `the limit is ${config.maxRecordBytes} bytes`,
    );
  }

  const fingerprint = idempotencyKey === undefined ? undefined : bodyFingerprint(body);
  const waitMs = Math.max(0, options.waitSeconds ?? 0) * 1000;
  const waitUntil = waitMs > 0 ? now + waitMs : 0;
  let outcome: CreateOutcome;
  let queuedAt: number | undefined;
  const dimensions = { projectId: principal.projectId };
  for (let attempt = 0; ; attempt++) {
    const at = attempt === 0 ? now : deps.now();
    if (attempt > 0) {
      // A session made after a wait starts (and runs its full timeout) from when it got its slot.
      record.createdAt = record.updatedAt = record.startedAt = at;
      record.expiresAt = Math.ceil((at + timeoutSeconds * 1000) / 1000) * 1000;
    }
    outcome = await deps.store.create({
      record,
      limit: principal.concurrency,
      now: at,
      retentionMs: config.retentionSeconds * 1000,
      maxLifetimeMs: SESSION_TIMEOUT_MAX_SECONDS * 1000,
      maxRetained: config.maxRetainedSessions,
      idempotency:
        idempotencyKey === undefined || fingerprint === undefined
          ? undefined
          : { key: idempotencyKey, fingerprint, ttlMs: config.idempotencyTtlSeconds * 1000 },
      wait:
        waitUntil > 0
          ? { until: waitUntil, connectWindowMs: config.connectDeadlineSeconds * 1000 }
          : undefined,
      rate: principal.rateLimits && { ...principal.rateLimits.create, takeToken: attempt === 0 },
    });
    if (outcome.kind !== "queued") break;
    if (queuedAt === undefined) {
      queuedAt = at;
      deps.metrics?.count("QueueWaits", 1, dimensions);
    }
    const wakeAt = Math.min(waitUntil, outcome.nextChangeAt > at ? outcome.nextChangeAt : Infinity);
    const woke = await deps.store
      .waitForGrant(principal.projectId, record.id, Math.min(MAX_BLOCK_MS, wakeAt - at), options.signal)
      .catch(async (error: unknown) => {
        await deps.store.leaveQueue(principal.projectId, record.id, deps.now()).catch(() => undefined);
        throw error;
      });
    if (woke === "aborted" || options.signal?.aborted) {
      await deps.store.leaveQueue(principal.projectId, record.id, deps.now()).catch(() => undefined);
      throw new HttpError(408, "the client went away while waiting for a slot");
    }
  }

  if (queuedAt !== undefined) deps.metrics?.duration("QueueWaitTime", deps.now() - queuedAt, dimensions);
  if (outcome.kind === "rate-limited") {
    throw rateLimited(
      principal.projectId,
      "creating sessions",
      principal.rateLimits?.create,
      outcome.retryAfterMs,
      deps,
    );
  }
  if (outcome.kind === "limited") {
    deps.metrics?.count("SessionsRefused", 1, dimensions);
    const at = deps.now();
    const retryAfter = Math.max(1, Math.ceil((outcome.earliestExpiresAt - at) / 1000));
    throw new TooManyRequestsError(
      `project ${principal.projectId} is at its limit of ${principal.concurrency} concurrent ` +
        `session${principal.concurrency === 1 ? "" : "s"}` +
        (waitMs > 0 ? ` and no slot freed within the ${waitMs / 1000} s wait` : "") +
        `; release a session or retry in ${retryAfter} s`,
      retryAfter,
      // The SDK's own retries back off for a few seconds at most: beyond that they cannot help.
      { shouldRetry: retryAfter <= 5, limit: principal.concurrency, running: outcome.liveCount },
    );
  }
  if (outcome.kind === "no-context") throw contextNotInProject(record.contextId ?? "");
  if (outcome.kind === "context-busy") {
    throw new ConflictError(
      `context ${record.contextId} is being persisted by session ${outcome.holderSessionId}; ` +
        "a context is persisted by one session at a time: wait until that session has ended and " +
        "its profile is saved, or create this session without persist",
    );
  }
  if (outcome.kind === "replay") {
    if (outcome.fingerprint !== fingerprint) {
      throw new ConflictError(
        "Idempotency-Key was already used with a different request body; use a new key",
      );
    }
    const original = await deps.store.get(principal.projectId, outcome.sessionId);
    if (!original) throw new NotFoundError("the session created with this Idempotency-Key no longer exists");
    // An ended session is answered as it is, without fresh connect credentials: it cannot be connected to.
    if (effectiveStatus(original, now) !== "RUNNING") {
      return { session: toSessionView(original, now) as CreatedSession, replayed: true };
    }
    return { session: await withConnection(original, keySet, deps, now), replayed: true };
  }
  deps.metrics?.count("SessionsCreated", 1, dimensions);
  if (queuedAt === undefined) deps.metrics?.duration("CreateLatency", deps.now() - now, dimensions);
  deps.logger.info("session created", {
    sessionId: record.id,
    projectId: record.projectId,
    principalId: record.principalId,
    timeoutSeconds,
    liveCount: outcome.liveCount,
  });
  return { session: await withConnection(record, keySet, deps, now), replayed: false };
}

/** Bytes of field names and values the record's Redis hash holds. */
export function storedBytes(record: SessionRecord): number {
  return recordToFields(record).reduce((sum, part) => sum + Buffer.byteLength(part), 0);
}

/** The 400 for a create whose context is unknown, deleted or another project's (the same text for each). */
function contextNotInProject(id: string): BadRequestError {
  return new BadRequestError(
    `browserSettings.context.id ${id.slice(0, 64)} is not a context of this project: create one with POST /v1/contexts first`,
  );
}

/** The same 404 for an id that never existed and for another project's session, so ids cannot be probed. */
export function sessionNotFound(id: string): NotFoundError {
  return new NotFoundError(`session ${id.slice(0, 64)} not found`);
}

/** A session of the principal's project, or a 404. */
export async function getSessionRecord(
  principal: Principal,
  id: string,
  deps: SessionDeps,
): Promise<SessionRecord> {
  if (!UUID_PATTERN.test(id)) throw sessionNotFound(id);
  const record = await deps.store.get(principal.projectId, id.toLowerCase());
  if (!record) throw sessionNotFound(id);
  return record;
}

/**
 * The Session as retrieve returns it: a RUNNING session also carries `connectUrl` and
 * `seleniumRemoteUrl` (with a fresh connect token), so a client can reconnect from its id alone
 * (Stagehand's reconnect needs this); the bare `signingKey` field is never returned here.
 */
export async function retrievableSession(
  record: SessionRecord,
  deps: SessionDeps,
): Promise<SessionView & { connectUrl?: string; seleniumRemoteUrl?: string }> {
  const now = deps.now();
  if (effectiveStatus(record, now) !== "RUNNING") return toSessionView(record, now);
  const { signingKey: _token, ...withUrls } = await withConnection(record, await tokenKeys(deps), deps, now);
  return withUrls;
}

/** Most sessions one list call returns. */
export const LIST_PAGE_LIMIT = 100;
/** Most ids one list call looks at (newest first) to find matches. */
export const LIST_SCAN_LIMIT = 1000;
const LIST_BATCH = 100;

export interface ListFilter {
  status?: SessionStatus;
  metadata?: MetadataClause[];
}

/**
 * The project's sessions, newest first, filtered by status (as clients see it, TIMED_OUT
 * derived) and user metadata: at most LIST_PAGE_LIMIT results among the newest LIST_SCAN_LIMIT
 * sessions. Reads the `sessions` index in batches, never KEYS or SCAN.
 */
export async function listSessions(
  principal: Principal,
  filter: ListFilter,
  deps: SessionDeps,
): Promise<SessionView[]> {
  const now = deps.now();
  const out: SessionView[] = [];
  const filtered = filter.status !== undefined || (filter.metadata?.length ?? 0) > 0;
  // Filtered lists read what the filter needs first; full fields only for candidates, at most
  // twice a page of them per call, so no query can make one list read much from Redis.
  let candidateBudget = 2 * LIST_PAGE_LIMIT;
  // RUNNING reads the live index, so a live session is listed however many ended ones are newer.
  const liveIds =
    filter.status === "RUNNING"
      ? await deps.store.liveIdsNewestFirst(principal.projectId, now, LIST_SCAN_LIMIT)
      : undefined;
  for (let offset = 0; offset < LIST_SCAN_LIMIT && out.length < LIST_PAGE_LIMIT; offset += LIST_BATCH) {
    const page = filtered
      ? await deps.store.listFiltered(principal.projectId, {
          offset,
          count: LIST_BATCH,
          now,
          status: filter.status,
          clauses: filter.metadata,
          maxCandidates: candidateBudget,
          ids: liveIds,
        })
      : {
          ...(await deps.store.listRecent(principal.projectId, { offset, count: LIST_BATCH })),
          exhausted: false,
        };
    candidateBudget -= page.records.length;
    for (const record of page.records) {
      if (filter.status !== undefined && effectiveStatus(record, now) !== filter.status) continue;
      if (filter.metadata && !matchesMetadata(record.userMetadata, filter.metadata)) continue;
      out.push(toSessionView(record, now));
      if (out.length === LIST_PAGE_LIMIT) break;
    }
    if (page.idsRead < LIST_BATCH || page.exhausted || candidateBudget <= 0) break;
  }
  return out;
}

/** Ends a session (REQUEST_RELEASE). Releasing an ended session returns it unchanged. */
export async function releaseSession(
  principal: Principal,
  id: string,
  deps: SessionDeps,
): Promise<SessionView> {
  if (!UUID_PATTERN.test(id)) throw sessionNotFound(id);
  const now = deps.now();
  const record = await deps.store.release(principal.projectId, id.toLowerCase(), now);
  if (!record) throw sessionNotFound(id);
  if (record.status === "COMPLETED" && record.endedAt === now) {
    deps.metrics?.count("SessionsEnded", 1, { projectId: record.projectId });
    deps.logger.info("session released", { sessionId: record.id, projectId: record.projectId });
  }
  return toSessionView(record, now);
}

/** A page of a live session, as the connect host reports it. */
export interface PageInfo {
  id: string;
  url: string;
  title: string;
  faviconUrl?: string;
}

/** Lists the pages of a live session (the local connect server provides one; deployed, the Proxy owns pages). */
export type PageLister = (projectId: string, sessionId: string) => Promise<PageInfo[]>;

export interface DebugUrls {
  debuggerUrl: string;
  debuggerFullscreenUrl: string;
  wsUrl: string;
  pages: (PageInfo & { debuggerUrl: string; debuggerFullscreenUrl: string })[];
}

/**
 * Live-view and debugger URLs on the connect host, each carrying a `debug`-scoped token that
 * expires after `expiresInSeconds` (at most the session's remaining life). 400 for an ended session.
 */
export async function debugSession(
  principal: Principal,
  id: string,
  expiresInSeconds: number | undefined,
  deps: SessionDeps,
): Promise<DebugUrls> {
  const record = await getSessionRecord(principal, id, deps);
  const now = deps.now();
  const status = effectiveStatus(record, now);
  if (status !== "RUNNING") {
    throw new BadRequestError(
      `session ${record.id} has ended (${status}); debug URLs exist only for a running session`,
    );
  }
  const remaining = Math.floor((record.expiresAt - now) / 1000);
  const lifetime = Math.max(1, Math.min(expiresInSeconds ?? remaining, remaining));
  const keySet = await tokenKeys(deps);
  const token = await mintSessionToken(
    keySet,
    {
      sessionId: record.id,
      projectId: record.projectId,
      principalId: principal.principalId,
      scope: "debug",
      expiresAt: Math.floor(now / 1000) + lifetime,
      now: Math.floor(now / 1000),
    },
    { issuer: deps.config.tokenIssuer, audience: deps.config.tokenAudience },
  );
  const { connectScheme, connectHost } = deps.config;
  const httpScheme = connectScheme === "wss" ? "https" : "http";
  const base = `${httpScheme}://${connectHost}/v1/sessions/${record.id}/debugger?signingKey=${token}`;
  const pages = deps.pages ? await deps.pages(record.projectId, record.id) : [];
  return {
    debuggerUrl: base,
    debuggerFullscreenUrl: `${base}&fullscreen=true`,
    wsUrl: `${connectScheme}://${connectHost}/v1/sessions/${record.id}/debug?signingKey=${token}`,
    pages: pages.map((page) => ({
      ...page,
      // The SDK's Page type has faviconUrl as a required string.
      faviconUrl: page.faviconUrl ?? "",
      debuggerUrl: `${base}&pageId=${encodeURIComponent(page.id)}`,
      debuggerFullscreenUrl: `${base}&pageId=${encodeURIComponent(page.id)}&fullscreen=true`,
    })),
  };
}
