import { createHash } from "node:crypto";
import { BadRequestError } from "./errors";

/** One clause of the user-metadata query: a path into userMetadata and the value it must have. */
export interface MetadataClause {
  path: string[];
  value: string;
}

const MAX_QUERY_LENGTH = 2000;
const MAX_CLAUSES = 10;

/**
 * Parses the list route's `q`, Browserbase's user-metadata query:
 * `user_metadata['order']:'42'`, nested `user_metadata['a']['b']:'x'`, clauses joined with `AND`.
 * Values are quoted with ' or " (backslash escapes the quote), or bare numbers/words.
 * Throws a 400 that says where the query goes wrong.
 */
export function parseMetadataQuery(q: string): MetadataClause[] {
  if (q.length > MAX_QUERY_LENGTH)
    throw new BadRequestError(`q is longer than ${MAX_QUERY_LENGTH} characters`);
  const clauses: MetadataClause[] = [];
  let i = 0;
  const fail = (what: string): never => {
    throw new BadRequestError(
      `q is not a valid user-metadata query: ${what} at position ${i} (expected e.g. user_metadata['key']:'value')`,
    );
  };
  const skipSpace = () => {
    while (i < q.length && /\s/.test(q[i])) i++;
  };
  const quoted = (): string => {
    const quote = q[i];
    if (quote !== "'" && quote !== '"') fail("expected a quoted string");
    i++;
    let out = "";
    while (i < q.length && q[i] !== quote) {
      if (q[i] === "\\" && i + 1 < q.length) i++;
      out += q[i++];
    }
    if (i >= q.length) fail("unterminated string");
    i++;
    return out;
  };
  skipSpace();
  if (i >= q.length) fail("empty query");
  for (;;) {
    skipSpace();
    if (!q.startsWith("user_metadata", i)) fail("expected user_metadata");
    i += "user_metadata".length;
    const path: string[] = [];
    while (q[i] === "[") {
      i++;
      path.push(quoted());
      if (q[i] !== "]") fail("expected ]");
      i++;
    }
    if (path.length === 0) fail("expected ['key'] after user_metadata");
    skipSpace();
    if (q[i] !== ":") fail("expected :");
    i++;
    skipSpace();
    let value: string;
    if (q[i] === "'" || q[i] === '"') {
      value = quoted();
    } else {
      const match = /^[A-Za-z0-9_.+-]+/.exec(q.slice(i));
      if (!match) fail("expected a value");
      value = match![0];
      i += value.length;
    }
    clauses.push({ path, value });
    if (clauses.length > MAX_CLAUSES) fail(`more than ${MAX_CLAUSES} clauses`);
    skipSpace();
    if (i >= q.length) return clauses;
    // A trailing AND reaches the clause check below, which says a clause is missing.
    const and = /^AND(\s|$)/i.exec(q.slice(i));
    if (!and) fail("expected AND between clauses");
    i += 3;
  }
}

/** True when every clause holds for `metadata` (strings compare exactly; numbers and booleans by their text). */
export function matchesMetadata(
  metadata: Record<string, unknown> | undefined,
  clauses: readonly MetadataClause[],
): boolean {
  return clauses.every((clause) => {
    let node: unknown = metadata;
    for (const key of clause.path) {
      if (typeof node !== "object" || node === null || Array.isArray(node)) return false;
      if (!Object.prototype.hasOwnProperty.call(node, key)) return false;
      node = (node as Record<string, unknown>)[key];
    }
    if (typeof node === "string") return node === clause.value;
    if (typeof node === "number" || typeof node === "boolean") return String(node) === clause.value;
    return false;
  });
}

/** How many of a session's metadata values its search digest holds (the first, in key order). */
export const MAX_DIGEST_VALUES = 32;
/** Marks a digest that holds only the first MAX_DIGEST_VALUES values: its session must be checked in full. */
export const DIGEST_INCOMPLETE = "+";

/** The search token of one path and value (what a clause and a metadata value share when they match). */
export function metadataToken(path: readonly string[], value: string): string {
  return createHash("sha256")
    .update(JSON.stringify([path, value]))
    .digest("base64url")
    .slice(0, 11);
}

/**
 * The search digest stored with a session: one short token per metadata value that a clause can
 * match (strings, numbers and booleans under object keys, as `matchesMetadata` reads them), space
 * separated, at most MAX_DIGEST_VALUES of them, then DIGEST_INCOMPLETE if there were more. A
 * list with `q` reads these (about 12 bytes a value) instead of whole metadata, and reads a
 * session's metadata only when every clause's token is in its digest (or the digest is incomplete).
 */
export function metadataDigest(metadata: Record<string, unknown>): string {
  const tokens: string[] = [];
  let complete = true;
  const walk = (node: Record<string, unknown>, path: string[]) => {
    for (const key of Object.keys(node).sort()) {
      if (!complete) return;
      const value = node[key];
      const at = [...path, key];
      if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
        if (tokens.length === MAX_DIGEST_VALUES) complete = false;
        else tokens.push(metadataToken(at, String(value)));
      } else if (typeof value === "object" && value !== null && !Array.isArray(value)) {
        walk(value as Record<string, unknown>, at);
      }
    }
  };
  walk(metadata, []);
  if (!complete) tokens.push(DIGEST_INCOMPLETE);
  return tokens.join(" ");
}

/**
 * Whether a session whose digest is `digest` (undefined: stored before digests existed) may match
 * every clause: false only when it certainly does not. A true answer is checked with `matchesMetadata`.
 */
export function digestMayMatch(digest: string | undefined, clauses: readonly MetadataClause[]): boolean {
  if (digest === undefined) return true;
  const tokens = new Set(digest.split(" "));
  if (tokens.has(DIGEST_INCOMPLETE)) return true;
  return clauses.every((clause) => tokens.has(metadataToken(clause.path, clause.value)));
}
