import { hash as digest, randomBytes } from "node:crypto";
import { z } from "zod";
import { UnauthorizedError } from "./errors";

/** `wc_` followed by 32 random bytes in base64url (43 characters). */
export const API_KEY_PATTERN = /^wc_[A-Za-z0-9_-]{43}$/;

/** One entry of the API-key secret. Only the key's hash is stored, never the key. */
export interface ApiKeyEntry {
  /** `sha256:` + hex SHA-256 of the whole key text. */
  hash: string;
  projectId: string;
  /**
   * Legacy (before projects): a limit written on the key. It counts only for a project that has
   * no entry in `projects`, whose limit is then the smallest of its keys' values (see
   * `resolveProjects`). `npm run keys -- migrate` moves it onto the project.
   */
  concurrency?: number;
  name?: string;
  createdAt?: string;
}

/** One project of the API-key secret: the limits every key of the project shares. */
export interface ProjectEntry {
  id: string;
  name?: string;
  /** Live sessions the project may hold at once; default DEFAULT_CONCURRENCY. */
  concurrency?: number;
  /** Seconds a session lives when its create names no timeout; default DEFAULT_TIMEOUT_SECONDS. */
  defaultTimeout?: number;
  /** Creates a second the project may make, on average (0 = no limit); default DEFAULT_CREATE_RATE. */
  createRate?: number;
  /** Creates the project may make at once after a quiet spell; default DEFAULT_CREATE_BURST. */
  createBurst?: number;
  /** Requests a second to the other routes (0 = no limit); default DEFAULT_REQUEST_RATE. */
  requestRate?: number;
  /** Requests to the other routes at once after a quiet spell; default DEFAULT_REQUEST_BURST. */
  requestBurst?: number;
  ownerId?: string;
  createdAt?: string;
  updatedAt?: string;
}

/** The API-key secret value: `{"keys": [ApiKeyEntry, ...], "projects": [ProjectEntry, ...]}`. */
export interface ApiKeySet {
  keys: ApiKeyEntry[];
  /** Optional: a secret written before projects existed has none (each project is then derived). */
  projects?: ProjectEntry[];
}

/** A project with every field resolved: the Project object of the Browserbase API. */
export interface Project {
  id: string;
  name: string;
  concurrency: number;
  defaultTimeout: number;
  ownerId: string;
  createdAt: string;
  updatedAt: string;
}

export interface Principal {
  projectId: string;
  /** Stable id of the key's holder, derived from the key hash (never from the key text). */
  principalId: string;
  /** The project's limit, shared by every key of the project. */
  concurrency: number;
  /** The project's default session timeout in seconds. */
  defaultTimeout: number;
  /** The project's token buckets: creates, and requests to the other routes; none = no limit. */
  rateLimits?: ProjectRateLimits;
  keyName?: string;
}

/** A token bucket: `perSecond` tokens a second on average, at most `burst` saved up. */
export interface RateLimit {
  perSecond: number;
  burst: number;
}

export interface ProjectRateLimits {
  create: RateLimit;
  requests: RateLimit;
}

export const PROJECT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** ownerId of a project whose entry names none: a self-hosted stack has one owner. */
export const DEFAULT_OWNER_ID = "self-hosted";
/** createdAt of a derived project none of whose keys says when it was made. */
const UNKNOWN_DATE = "1970-01-01T00:00:00.000Z";

/** Bounds of a project's fields (the session create schema allows timeouts of 60..21600 s). */
export const PROJECT_LIMITS = {
  concurrency: { min: 1, max: 100000 },
  defaultTimeout: { min: 60, max: 21600 },
  rate: { min: 0, max: 100000 },
  burst: { min: 1, max: 100000 },
} as const;

/**
 * Schemas are built by functions, not held in module constants: the handlers are serialized
 * into the Lambda package by Pulumi, which cannot serialize zod's bound methods.
 */
export function apiKeyEntrySchema() {
  return z.object({
    hash: z.string().regex(/^sha256:[0-9a-f]{64}$/, "hash must be sha256:<64 hex digits>"),
    projectId: z.string().regex(PROJECT_ID_PATTERN, "projectId must be 1-64 letters, digits, _ or -"),
    concurrency: z
      .number()
      .int()
      .min(PROJECT_LIMITS.concurrency.min)
      .max(PROJECT_LIMITS.concurrency.max)
      .optional(),
    name: z.string().max(200).optional(),
    createdAt: z.string().optional(),
  });
}

export function projectEntrySchema() {
  return z.object({
    id: z.string().regex(PROJECT_ID_PATTERN, "id must be 1-64 letters, digits, _ or -"),
    name: z.string().min(1).max(200).optional(),
    concurrency: z
      .number()
      .int()
      .min(PROJECT_LIMITS.concurrency.min, "concurrency must be at least 1")
      .max(PROJECT_LIMITS.concurrency.max, "concurrency must be at most 100000")
      .optional(),
    defaultTimeout: z
      .number()
      .int()
      .min(PROJECT_LIMITS.defaultTimeout.min, "defaultTimeout must be at least 60 seconds")
      .max(PROJECT_LIMITS.defaultTimeout.max, "defaultTimeout must be at most 21600 seconds")
      .optional(),
    createRate: rateSchema("createRate"),
    createBurst: burstSchema("createBurst"),
    requestRate: rateSchema("requestRate"),
    requestBurst: burstSchema("requestBurst"),
    ownerId: z.string().min(1).max(200).optional(),
    createdAt: z.string().optional(),
    updatedAt: z.string().optional(),
  });
}

function rateSchema(name: string) {
  return z
    .number()
    .min(PROJECT_LIMITS.rate.min, `${name} must be 0 (no limit) or more`)
    .max(PROJECT_LIMITS.rate.max, `${name} must be at most ${PROJECT_LIMITS.rate.max} a second`)
    .optional();
}

function burstSchema(name: string) {
  return z
    .number()
    .int()
    .min(PROJECT_LIMITS.burst.min, `${name} must be at least 1`)
    .max(PROJECT_LIMITS.burst.max, `${name} must be at most ${PROJECT_LIMITS.burst.max}`)
    .optional();
}

/** Hash of an API key as stored in the secret. */
export function hashApiKey(key: string): string {
  // The one-shot digest makes no Hash object: nothing for the garbage collector to finalize per request.
  return "sha256:" + digest("sha256", key, "hex");
}

/** The principal id for a key hash: a one-way function of the hash, so it reveals nothing. */
export function principalIdFor(hash: string): string {
  return "prn_" + digest("sha256", "wallcrawler-principal\0" + hash, "base64url").slice(0, 22);
}

/** Mints a new API key and the entry to put in the secret. The key is shown once and never stored. */
export function generateApiKey(
  projectId: string,
  options: { name?: string; now?: Date } = {},
): { key: string; entry: ApiKeyEntry } {
  if (!PROJECT_ID_PATTERN.test(projectId)) {
    throw new Error("projectId must be 1-64 letters, digits, _ or -, starting with a letter or digit");
  }
  const key = "wc_" + randomBytes(32).toString("base64url");
  const entry: ApiKeyEntry = apiKeyEntrySchema().parse({
    hash: hashApiKey(key),
    projectId,
    name: options.name,
    createdAt: (options.now ?? new Date()).toISOString(),
  });
  return { key, entry };
}

/** Defaults a project entry's missing fields come from (the stack's config). */
export interface ProjectDefaults {
  concurrency: number;
  defaultTimeout: number;
  /** Default: no rate limits (what a caller that names none gets). */
  rateLimits?: ProjectRateLimits;
}

/** No limit: a bucket that never runs dry. */
const UNLIMITED: RateLimit = { perSecond: 0, burst: 1 };

/** The project's token buckets: its entry's fields, else the defaults. */
export function projectRateLimits(
  directory: ApiKeyDirectory,
  projectId: string,
  defaults: ProjectDefaults,
): ProjectRateLimits {
  const entry = directory.projects.get(projectId);
  const create = defaults.rateLimits?.create ?? UNLIMITED;
  const requests = defaults.rateLimits?.requests ?? UNLIMITED;
  return {
    create: { perSecond: entry?.createRate ?? create.perSecond, burst: entry?.createBurst ?? create.burst },
    requests: {
      perSecond: entry?.requestRate ?? requests.perSecond,
      burst: entry?.requestBurst ?? requests.burst,
    },
  };
}

/** The secret parsed once per fetched value: keys by hash, and the projects as stored. */
export interface ApiKeyDirectory {
  keys: Map<string, ApiKeyEntry>;
  /** Project entries of the secret, by id (a project with keys but no entry is not here). */
  projects: Map<string, ProjectEntry>;
  /** Per project with keys: the smallest legacy per-key limit and the earliest key date. */
  keyProjects: Map<string, { legacyLimit?: number; createdAt?: string }>;
}

/** Kept for callers that only look keys up: the directory's key map. */
export type ApiKeyIndex = Map<string, ApiKeyEntry>;

/** Parses the API-key secret; throws with the path of the first bad field. */
export function parseApiKeySet(raw: string): ApiKeyDirectory {
  const parsed = z
    .object({ keys: z.array(apiKeyEntrySchema()), projects: z.array(projectEntrySchema()).optional() })
    .safeParse(JSON.parse(raw));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`API-key secret is malformed at ${issue?.path.join(".") || "(root)"}: ${issue?.message}`);
  }
  const keys: ApiKeyIndex = new Map();
  const keyProjects: ApiKeyDirectory["keyProjects"] = new Map();
  for (const entry of parsed.data.keys) {
    keys.set(entry.hash, entry);
    const seen = keyProjects.get(entry.projectId) ?? {};
    if (entry.concurrency !== undefined)
      seen.legacyLimit = Math.min(seen.legacyLimit ?? Infinity, entry.concurrency);
    if (entry.createdAt !== undefined && (seen.createdAt === undefined || entry.createdAt < seen.createdAt))
      seen.createdAt = entry.createdAt;
    keyProjects.set(entry.projectId, seen);
  }
  const projects = new Map<string, ProjectEntry>();
  for (const [index, project] of (parsed.data.projects ?? []).entries()) {
    if (projects.has(project.id)) {
      throw new Error(
        `API-key secret is malformed at projects.${index}.id: project ${project.id} appears twice`,
      );
    }
    projects.set(project.id, project);
  }
  return { keys, projects, keyProjects };
}

/**
 * A project with every field resolved. A project with an entry takes its fields from it (a
 * `concurrency` written on one of its keys is then ignored); a project known only from its keys
 * (a secret written before projects) takes the smallest limit written on any of its keys, else
 * the default, so adding a key without a limit can never raise a project's limit.
 */
export function resolveProject(
  directory: ApiKeyDirectory,
  projectId: string,
  defaults: ProjectDefaults,
): Project | undefined {
  const entry = directory.projects.get(projectId);
  if (entry) {
    const createdAt = entry.createdAt ?? UNKNOWN_DATE;
    return {
      id: entry.id,
      name: entry.name ?? entry.id,
      concurrency: entry.concurrency ?? defaults.concurrency,
      defaultTimeout: entry.defaultTimeout ?? defaults.defaultTimeout,
      ownerId: entry.ownerId ?? DEFAULT_OWNER_ID,
      createdAt,
      updatedAt: entry.updatedAt ?? createdAt,
    };
  }
  const derived = directory.keyProjects.get(projectId);
  if (!derived) return undefined;
  const createdAt = derived.createdAt;
  return {
    id: projectId,
    name: projectId,
    concurrency: derived.legacyLimit ?? defaults.concurrency,
    defaultTimeout: defaults.defaultTimeout,
    ownerId: DEFAULT_OWNER_ID,
    createdAt: createdAt ?? UNKNOWN_DATE,
    updatedAt: createdAt ?? UNKNOWN_DATE,
  };
}

/** Every project the secret knows (with an entry or with keys), sorted by id. */
export function listProjects(directory: ApiKeyDirectory, defaults: ProjectDefaults): Project[] {
  const ids = new Set<string>([...directory.projects.keys(), ...directory.keyProjects.keys()]);
  return [...ids]
    .sort()
    .map((id) => resolveProject(directory, id, defaults))
    .filter((project): project is Project => project !== undefined);
}

/**
 * Finds the principal for a presented key. The key is hashed before any comparison and looked
 * up by its hash, so the time taken does not depend on how many leading characters of a wrong
 * key match a real one.
 */
export function authenticate(
  presented: string | undefined,
  directory: ApiKeyDirectory,
  defaults: ProjectDefaults,
): Principal {
  if (presented === undefined || presented === "") {
    throw new UnauthorizedError("Missing API key: send it in the X-BB-API-Key header.");
  }
  if (!API_KEY_PATTERN.test(presented)) {
    throw new UnauthorizedError("Malformed API key: keys look like wc_ followed by 43 base64url characters.");
  }
  const hash = hashApiKey(presented);
  const entry = directory.keys.get(hash);
  if (!entry) throw new UnauthorizedError("Invalid API key.");
  // Every key has a project: at least the one derived from the key itself.
  const project = resolveProject(directory, entry.projectId, defaults) as Project;
  return {
    projectId: entry.projectId,
    principalId: principalIdFor(hash),
    concurrency: project.concurrency,
    defaultTimeout: project.defaultTimeout,
    rateLimits: projectRateLimits(directory, entry.projectId, defaults),
    keyName: entry.name,
  };
}
