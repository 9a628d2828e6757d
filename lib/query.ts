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
