import { readFile } from "node:fs/promises";
import { DependencyError } from "./errors";
import type { Metrics } from "./metrics";
import { SecretsManagerClient } from "./secrets-manager";
import type { Tracing } from "./tracing";

/**
 * Where secret values come from. A reference is either a Secrets Manager ARN/name, or
 * `file:<path>#<field>` for the local stack (the field of a JSON file, in the same format the
 * Secrets Manager secret would hold).
 */
export interface SecretSource {
  /** Human name of the backing service, used in 503 messages and logs. */
  readonly name: string;
  fetch(ref: string): Promise<string>;
}

/**
 * Secrets Manager, through a SigV4-signed GetSecretValue over node:https (lib/secrets-manager.ts:
 * the AWS SDK client took about 110 ms of a cold start to load). Credentials, region and endpoint
 * come from the environment (endpoint overridable with AWS_ENDPOINT_URL_SECRETS_MANAGER).
 */
export class SecretsManagerSource implements SecretSource {
  readonly name = "Secrets Manager";
  private client: SecretsManagerClient | undefined;

  /**
   * The client is made on first use, from `env`: a stack that reads only local files needs no AWS
   * credentials, and a missing one fails that fetch (a 503 naming it in the log), not the load.
   */
  constructor(
    client?: SecretsManagerClient,
    private readonly env: Record<string, string | undefined> = process.env,
  ) {
    this.client = client;
  }

  async fetch(ref: string): Promise<string> {
    this.client ??= SecretsManagerClient.fromEnv(this.env, {
      // Two short attempts keep a cold container's 503 near one second when the service is down
      // (GetSecretValue normally answers in tens of milliseconds).
      maxAttempts: 2,
      connectTimeoutMs: 300,
      requestTimeoutMs: 400,
    });
    const out = await this.client.getSecretValue(ref);
    if (typeof out.SecretString === "string") return out.SecretString;
    if (typeof out.SecretBinary === "string") return Buffer.from(out.SecretBinary, "base64").toString("utf8");
    throw new Error(`secret ${ref} has no value`);
  }
}

/** A field of a local JSON file: `file:/path/to/secrets.json#apiKeys`. */
export class FileSecretSource implements SecretSource {
  readonly name = "local secrets file";

  async fetch(ref: string): Promise<string> {
    const { path, field } = parseFileRef(ref);
    let document: Record<string, unknown>;
    try {
      document = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
    } catch (error) {
      // JSON.parse's message quotes the text: name the file, never a piece of its secrets.
      if (error instanceof SyntaxError)
        throw new Error(`${path} is not valid JSON: fix it or delete it (npm start makes a new one)`, {
          cause: error,
        });
      throw error;
    }
    if (typeof document !== "object" || document === null) throw new Error(`${path} is not a JSON object`);
    if (!field) return JSON.stringify(document);
    if (!(field in document)) throw new Error(`"${field}" is missing from ${path}`);
    const value = document[field];
    return typeof value === "string" ? value : JSON.stringify(value);
  }
}

export function parseFileRef(ref: string): { path: string; field?: string } {
  const rest = ref.slice("file:".length);
  const hash = rest.lastIndexOf("#");
  return hash === -1 ? { path: rest } : { path: rest.slice(0, hash), field: rest.slice(hash + 1) };
}

export function isFileRef(ref: string): boolean {
  return ref.startsWith("file:");
}

interface CacheEntry {
  raw: string;
  parsed: Map<unknown, unknown>;
  fetchedAt: number;
  /** After a failed refresh, the stale value is served without asking the source until then. */
  retryAt?: number;
}

export interface SecretCacheOptions {
  /** A value younger than this is used without asking the source. */
  ttlMs: number;
  /** Past the TTL, a value this much older is still served while the source is failing. */
  maxStaleMs: number;
  /**
   * After a failed refresh, how long the stale value is served before the source is asked
   * again (default 5 s): otherwise every request during an outage would wait out the failing call.
   */
  retryBackoffMs?: number;
  now?: () => number;
  /** Told when a stale value is served because the source failed (for a log line, never the value). */
  onStale?: (ref: string, error: unknown) => void;
  /** Called when a fetched secret does not parse (a configuration problem; the request gets a 503). */
  onInvalid?: (ref: string, error: unknown) => void;
  /** Each fetch from a source is a `SecretsLatency` sample (ms); each failed one counts in `SecretsErrors`. */
  metrics?: Metrics;
  /** Each fetch is a subsegment of the current trace. */
  tracing?: Tracing;
}

/**
 * An in-memory secret cache in front of one or two sources (file references go to the file
 * source, everything else to Secrets Manager). One fetch per reference at a time; a failed
 * refresh serves the last good value until it is `maxStaleMs` past its TTL; with nothing usable
 * cached a failure is a 503 `DependencyError`.
 */
export class SecretCache {
  private readonly entries = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<CacheEntry>>();
  private readonly now: () => number;

  constructor(
    private readonly remote: SecretSource,
    private readonly local: SecretSource,
    private readonly options: SecretCacheOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** The raw secret string. */
  async get(ref: string): Promise<string> {
    return (await this.entry(ref)).raw;
  }

  /** The secret parsed by `parse`; the parse runs once per fetched value, not per call. */
  async getParsed<T>(ref: string, parse: (raw: string) => T): Promise<T> {
    const entry = await this.entry(ref);
    if (!entry.parsed.has(parse)) {
      try {
        entry.parsed.set(parse, parse(entry.raw));
      } catch (error) {
        // A malformed secret is a configuration problem, not a request's: a 503 (retry once it is
        // fixed), with the detail (which secret, what is wrong) in the log, never a 500.
        this.options.onInvalid?.(ref, error);
        throw new DependencyError("secrets", error);
      }
    }
    return entry.parsed.get(parse) as T;
  }

  /** Forgets the cached value of `ref`: the next request fetches it again (a local key was just added). */
  invalidate(ref: string): void {
    this.entries.delete(ref);
    // A fetch already under way may have read the old value: it must not become the cached one.
    this.inflight.delete(ref);
  }

  /** Starts fetching `ref` now (at container init) so the first request does not wait for it. */
  warm(ref: string): void {
    this.entry(ref).catch(() => undefined);
  }

  private async entry(ref: string): Promise<CacheEntry> {
    const cached = this.entries.get(ref);
    const now = this.now();
    if (cached && now - cached.fetchedAt < this.options.ttlMs) return cached;
    const usableStale =
      cached !== undefined && now - cached.fetchedAt < this.options.ttlMs + this.options.maxStaleMs;
    if (usableStale && cached.retryAt !== undefined && now < cached.retryAt) return cached;
    try {
      return await this.refresh(ref);
    } catch (error) {
      if (usableStale) {
        cached.retryAt = this.now() + (this.options.retryBackoffMs ?? 5000);
        this.options.onStale?.(ref, error);
        return cached;
      }
      throw new DependencyError(this.sourceFor(ref).name, error);
    }
  }

  private refresh(ref: string): Promise<CacheEntry> {
    let pending = this.inflight.get(ref);
    if (!pending) {
      pending = this.timedFetch(ref)
        .then((raw) => {
          if (this.inflight.get(ref) !== pending) return this.refresh(ref); // invalidated meanwhile
          const previous = this.entries.get(ref);
          const entry: CacheEntry =
            previous && previous.raw === raw
              ? { raw, parsed: previous.parsed, fetchedAt: this.now() }
              : { raw, parsed: new Map(), fetchedAt: this.now() };
          this.entries.set(ref, entry);
          return entry;
        })
        .finally(() => {
          if (this.inflight.get(ref) === pending) this.inflight.delete(ref);
        });
      this.inflight.set(ref, pending);
    }
    return pending;
  }

  /** One fetch from the source, timed and traced (by the source's name: neither the reference nor the value). */
  private async timedFetch(ref: string): Promise<string> {
    const source = this.sourceFor(ref);
    const span = this.options.tracing?.span(source.name);
    const started = performance.now();
    try {
      const raw = await source.fetch(ref);
      span?.end();
      return raw;
    } catch (error) {
      this.options.metrics?.count("SecretsErrors");
      span?.end(error);
      throw error;
    } finally {
      this.options.metrics?.duration("SecretsLatency", performance.now() - started);
    }
  }

  private sourceFor(ref: string): SecretSource {
    return isFileRef(ref) ? this.local : this.remote;
  }
}
