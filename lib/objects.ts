import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, resolve, sep } from "node:path";
import { ConfigError } from "./config";
import { guardDependency } from "./errors";

/**
 * The object store: one boundary, two implementations. Deployed, one private S3 bucket; locally,
 * files under a folder of WALLCRAWLER_HOME. Extensions (and later context archives and session
 * files) live here; their metadata lives in Redis. Every failure is a 503 DependencyError.
 */
export interface ObjectStore {
  put(key: string, body: Buffer, contentType: string): Promise<void>;
  /** The object's bytes, or undefined when there is none. */
  get(key: string): Promise<Buffer | undefined>;
  /** Removes the object now (used to undo a write whose metadata could not be stored). */
  delete(key: string): Promise<void>;
  /**
   * Marks an object deleted without removing it: sessions that already reference it keep
   * working, and the store removes it after `RETIRED_OBJECT_DAYS` (S3: a lifecycle rule on the
   * tag; files: a sweep at start-up).
   */
  retire(key: string): Promise<void>;
  /**
   * A URL that lets its holder PUT the object for `expiresInSeconds` (S3 only: a presigned PUT).
   * Stores without one (the local folder) are written through an endpoint of the local stack.
   */
  presignPut?(key: string, expiresInSeconds: number): Promise<string>;
  /** A URL that lets its holder GET the object for `expiresInSeconds` (S3 only). */
  presignGet?(key: string, expiresInSeconds: number): Promise<string>;
}

/** The S3 object tag, and its value, that the bucket's lifecycle rule expires. */
export const RETIRED_TAG = { key: "wallcrawler-retired", value: "true" } as const;
/** How long a retired object is kept: longer than any session can live (6 h). */
export const RETIRED_OBJECT_DAYS = 1;

/** Key layout of the object store (documented in the README's Proxy contract). */
export const objectKeys = {
  /** An uploaded extension's .zip. */
  extension: (projectId: string, extensionId: string) => `extensions/${projectId}/${extensionId}.zip`,
  /** A context's encrypted profile archive (format: lib/contexts.ts, CONTEXT_ARCHIVE_MAGIC). */
  context: (projectId: string, contextId: string) => `contexts/${projectId}/${contextId}.bin`,
};

const KEY_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._/-]*$/;

function checkKey(key: string): void {
  if (!KEY_PATTERN.test(key) || key.split("/").some((part) => part === "" || part === "." || part === "..")) {
    throw new Error(`invalid object key: ${JSON.stringify(key).slice(0, 200)}`);
  }
}

const guard = <T>(operation: () => Promise<T>): Promise<T> => guardDependency("object store", operation);

/** Objects as files under `root` (the local stack: `WALLCRAWLER_HOME/objects`). */
export class FileObjectStore implements ObjectStore {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  private path(key: string): string {
    checkKey(key);
    const path = resolve(this.root, key);
    if (!path.startsWith(this.root + sep)) throw new Error("object key escapes the store");
    return path;
  }

  async put(key: string, body: Buffer, _contentType?: string): Promise<void> {
    const path = this.path(key);
    await guard(async () => {
      mkdirSync(dirname(path), { recursive: true });
      // Write then rename: a reader never sees half a file.
      const partial = `${path}.${randomBytes(6).toString("hex")}.partial`;
      writeFileSync(partial, body, { mode: 0o600 });
      renameSync(partial, path);
      rmSync(`${path}.retired`, { force: true });
    });
  }

  async get(key: string): Promise<Buffer | undefined> {
    const path = this.path(key);
    return guard(async () => {
      try {
        return readFileSync(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw error;
      }
    });
  }

  async delete(key: string): Promise<void> {
    const path = this.path(key);
    await guard(async () => {
      rmSync(path, { force: true });
      rmSync(`${path}.retired`, { force: true });
    });
  }

  async retire(key: string): Promise<void> {
    const path = this.path(key);
    await guard(async () => {
      if (existsSync(path)) writeFileSync(`${path}.retired`, new Date().toISOString());
    });
  }

  /** Removes retired objects older than `maxAgeMs` (the local stack runs this at start-up). */
  sweepRetired(maxAgeMs = RETIRED_OBJECT_DAYS * 86_400_000, now = Date.now()): number {
    let removed = 0;
    const walk = (dir: string) => {
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        return;
      }
      for (const name of names) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (name.endsWith(".retired") && now - statSync(path).mtimeMs > maxAgeMs) {
          rmSync(path.slice(0, -".retired".length), { force: true });
          rmSync(path, { force: true });
          removed++;
        }
      }
    };
    walk(this.root);
    return removed;
  }
}

/** The slice of the S3 client this store uses (the real client satisfies it). */
interface S3Like {
  send(command: unknown): Promise<unknown>;
}

/**
 * Objects in one S3 bucket. The client (`@aws-sdk/client-s3`, which the Lambda runtime ships)
 * is loaded on first use, so functions that never touch the store do not pay for it at cold start.
 */
export class S3ObjectStore implements ObjectStore {
  private client: S3Like | undefined;
  private sdk: typeof import("@aws-sdk/client-s3") | undefined;

  constructor(
    readonly bucket: string,
    private readonly options: { region?: string; endpoint?: string; timeoutMs?: number } = {},
  ) {}

  private s3(): { client: S3Like; sdk: typeof import("@aws-sdk/client-s3") } {
    if (!this.client || !this.sdk) {
      const sdk = require("@aws-sdk/client-s3") as typeof import("@aws-sdk/client-s3");
      this.sdk = sdk;
      this.client = new sdk.S3Client({
        region: this.options.region,
        endpoint: this.options.endpoint,
        forcePathStyle: this.options.endpoint !== undefined,
        maxAttempts: 2,
        requestHandler: { requestTimeout: this.options.timeoutMs ?? 5000, connectionTimeout: 1000 },
      });
    }
    return { client: this.client, sdk: this.sdk };
  }

  async put(key: string, body: Buffer, contentType: string): Promise<void> {
    checkKey(key);
    await guard(async () => {
      const { client, sdk } = this.s3();
      await client.send(
        new sdk.PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }),
      );
    });
  }

  async presignPut(key: string, expiresInSeconds: number): Promise<string> {
    return this.presign(key, expiresInSeconds, "put");
  }

  async presignGet(key: string, expiresInSeconds: number): Promise<string> {
    return this.presign(key, expiresInSeconds, "get");
  }

  private async presign(key: string, expiresInSeconds: number, kind: "get" | "put"): Promise<string> {
    checkKey(key);
    return guard(async () => {
      const { client, sdk } = this.s3();
      const presigner =
        require("@aws-sdk/s3-request-presigner") as typeof import("@aws-sdk/s3-request-presigner");
      const command =
        kind === "put"
          ? new sdk.PutObjectCommand({ Bucket: this.bucket, Key: key })
          : new sdk.GetObjectCommand({ Bucket: this.bucket, Key: key });
      return presigner.getSignedUrl(client as unknown as import("@aws-sdk/client-s3").S3Client, command, {
        expiresIn: expiresInSeconds,
      });
    });
  }

  async get(key: string): Promise<Buffer | undefined> {
    checkKey(key);
    return guard(async () => {
      const { client, sdk } = this.s3();
      try {
        const result = (await client.send(new sdk.GetObjectCommand({ Bucket: this.bucket, Key: key }))) as {
          Body?: { transformToByteArray(): Promise<Uint8Array> };
        };
        return result.Body ? Buffer.from(await result.Body.transformToByteArray()) : Buffer.alloc(0);
      } catch (error) {
        if ((error as { name?: string }).name === "NoSuchKey") return undefined;
        throw error;
      }
    });
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    await guard(async () => {
      const { client, sdk } = this.s3();
      await client.send(new sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    });
  }

  async retire(key: string): Promise<void> {
    checkKey(key);
    await guard(async () => {
      const { client, sdk } = this.s3();
      try {
        await client.send(
          new sdk.PutObjectTaggingCommand({
            Bucket: this.bucket,
            Key: key,
            Tagging: { TagSet: [{ Key: RETIRED_TAG.key, Value: RETIRED_TAG.value }] },
          }),
        );
      } catch (error) {
        if ((error as { name?: string }).name !== "NoSuchKey") throw error;
      }
    });
  }
}

/**
 * The store an `OBJECT_STORE` value names: `s3://<bucket>` or `file:<folder>`. Throws a
 * ConfigError that names the variable for anything else.
 */
export function objectStoreFrom(value: string, options: { region?: string } = {}): ObjectStore {
  if (value.startsWith("s3://")) {
    const bucket = value.slice("s3://".length).replace(/\/+$/, "");
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
      throw new ConfigError(`environment variable OBJECT_STORE names an invalid S3 bucket: "${bucket}"`);
    }
    return new S3ObjectStore(bucket, { region: options.region });
  }
  if (value.startsWith("file:")) {
    const dir = value.slice("file:".length);
    if (!dir)
      throw new ConfigError("environment variable OBJECT_STORE=file: needs a folder, e.g. file:/var/wc");
    return new FileObjectStore(dir);
  }
  throw new ConfigError(
    `environment variable OBJECT_STORE must be s3://<bucket> or file:<folder>, got "${value.slice(0, 100)}"`,
  );
}
