import { z } from "zod";
import { SESSION_TIMEOUT_MAX_SECONDS, SESSION_TIMEOUT_MIN_SECONDS } from "./config";
import { BadRequestError } from "./errors";
import { parseJsonBody, type HttpEvent } from "./http";
import { SESSION_STATUSES } from "./session";

/*
 * Request and response schemas of the Sessions API. They are built by functions rather than held
 * in module constants because Pulumi serializes the handlers into the Lambda package and cannot
 * serialize zod's bound methods; a handler builds them once per container. The OpenAPI document
 * is generated from the same functions.
 */

const boundedString = (max: number) => z.string().max(max, `must be at most ${max} characters`);

function timeoutSchema() {
  const range = `${SESSION_TIMEOUT_MIN_SECONDS} to ${SESSION_TIMEOUT_MAX_SECONDS}`;
  return z
    .number({ error: `must be a whole number of seconds from ${range}` })
    .int({ error: `must be a whole number of seconds from ${range}` })
    .min(SESSION_TIMEOUT_MIN_SECONDS, { error: `must be at least ${SESSION_TIMEOUT_MIN_SECONDS} seconds` })
    .max(SESSION_TIMEOUT_MAX_SECONDS, {
      error: (issue) => {
        const value = Number(issue.input);
        // Sending milliseconds is a common client mistake: say so.
        return value % 1000 === 0
          ? `is in seconds (${range}); ${value} looks like milliseconds, send ${value / 1000}`
          : `must be at most ${SESSION_TIMEOUT_MAX_SECONDS} seconds (6 hours)`;
      },
    })
    .describe("Session timeout in seconds; the session ends by itself this long after creation.");
}

function proxyEntrySchema() {
  const domainPattern = boundedString(500).optional();
  return z.discriminatedUnion(
    "type",
    [
      z.looseObject({
        type: z.literal("browserbase"),
        domainPattern,
        geolocation: z
          .looseObject({
            city: boundedString(100).optional(),
            state: boundedString(100).optional(),
            country: boundedString(2),
          })
          .optional(),
      }),
      z.looseObject({
        type: z.literal("external"),
        server: boundedString(2000).min(1, "is required for an external proxy"),
        username: boundedString(500).optional(),
        password: boundedString(500).optional(),
        domainPattern,
      }),
      z.looseObject({ type: z.literal("none"), domainPattern }),
    ],
    { error: 'must have type "browserbase", "external" or "none"' },
  );
}

/** Largest `browserSettings.fingerprint`, in bytes of JSON (a legacy field: stored, handed to the Proxy). */
export const MAX_FINGERPRINT_BYTES = 2048;

/**
 * Browserbase's browser settings (SDK 2.21's `BrowserSettings`, plus the legacy `fingerprint`),
 * each bounded. Fields outside Browserbase's set are dropped rather than stored: a session record's
 * size is bounded by what these allow.
 */
function browserSettingsSchema() {
  const flag = z.boolean({ error: "must be true or false" }).optional();
  return z
    .object({
      context: z
        .object({
          id: boundedString(128).min(1, "must not be empty"),
          persist: flag,
        })
        .optional(),
      viewport: z
        .object({
          width: z.number().int().min(1).max(8192).optional(),
          height: z.number().int().min(1).max(8192).optional(),
        })
        .optional(),
      blockAds: flag,
      solveCaptchas: flag,
      recordSession: flag,
      logSession: flag,
      advancedStealth: flag,
      verified: flag,
      ignoreCertificateErrors: flag,
      os: boundedString(32).optional(),
      extensionId: boundedString(128).optional(),
      allowedDomains: z.array(boundedString(253)).max(100, "must have at most 100 entries").optional(),
      captchaImageSelector: boundedString(1000).optional(),
      captchaInputSelector: boundedString(1000).optional(),
      fingerprint: z
        .record(z.string(), z.unknown(), { error: "must be a JSON object" })
        .refine((value) => Buffer.byteLength(JSON.stringify(value)) <= MAX_FINGERPRINT_BYTES, {
          error: `must be at most ${MAX_FINGERPRINT_BYTES} bytes of JSON`,
        })
        .optional(),
    })
    .describe(
      "Browser settings (Browserbase's fields; others are dropped). Fields the API does not act on are stored and handed to the Proxy.",
    );
}

/** Body of `POST /v1/sessions`. Unknown top-level fields are ignored, for forward compatibility. */
export function createSessionBodySchema() {
  return z.looseObject({
    projectId: boundedString(64).min(1).optional().describe("Must be the API key's project when given."),
    timeout: timeoutSchema().optional(),
    keepAlive: z.boolean({ error: "must be true or false" }).optional(),
    region: z
      .string()
      .regex(/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/, "must be an AWS region name such as us-west-2")
      .optional(),
    extensionId: boundedString(128).optional(),
    userMetadata: z
      .record(z.string(), z.unknown(), { error: "must be a JSON object" })
      .optional()
      .describe("Arbitrary JSON object, returned as given and searchable with the list route's q."),
    proxies: z
      .union([z.boolean(), z.array(proxyEntrySchema()).max(20, "must have at most 20 entries")], {
        error: "must be true or a list of proxy entries",
      })
      .optional(),
    proxySettings: z.looseObject({}).optional(),
    browserSettings: browserSettingsSchema().optional(),
  });
}

export type CreateSessionBody = z.infer<ReturnType<typeof createSessionBodySchema>>;

/** Body of `POST /v1/sessions/{id}`. */
export function updateSessionBodySchema() {
  return z.strictObject(
    {
      status: z.literal("REQUEST_RELEASE", { error: 'must be "REQUEST_RELEASE"' }),
      projectId: boundedString(64).min(1).optional(),
    },
    {
      error: (issue) =>
        issue.code === "unrecognized_keys" ? `unknown field ${issue.keys.join(", ")}` : undefined,
    },
  );
}

/** The Session object every route returns. */
export function sessionSchema() {
  const iso = z.string().describe("ISO-8601 timestamp");
  return z.object({
    id: z.string(),
    createdAt: iso,
    updatedAt: iso,
    projectId: z.string(),
    startedAt: iso,
    endedAt: iso.optional(),
    expiresAt: iso,
    status: z.enum(SESSION_STATUSES),
    proxyBytes: z.number().int(),
    keepAlive: z.boolean(),
    region: z.string(),
    contextId: z.string().optional(),
    userMetadata: z.record(z.string(), z.unknown()).optional(),
  });
}

/** What create returns: the Session plus where and how to connect. */
export function createdSessionSchema() {
  return sessionSchema().extend({
    connectUrl: z.string().describe("WebSocket URL of the connect host, carrying the signing key"),
    seleniumRemoteUrl: z.string(),
    signingKey: z.string().describe("Encrypted session token (compact JWE) the Proxy checks"),
  });
}

/** What retrieve returns: the Session, plus connect URLs (fresh token) while it is running. */
export function retrievedSessionSchema() {
  return sessionSchema().extend({
    connectUrl: z.string().optional().describe("Present while the session is RUNNING"),
    seleniumRemoteUrl: z.string().optional(),
  });
}

export function errorBodySchema() {
  return z.object({
    statusCode: z.number().int(),
    error: z.string(),
    message: z.string(),
    limit: z.number().int().optional().describe("429 at the concurrency limit: the project's limit"),
    running: z.number().int().optional().describe("429 at the concurrency limit: its live sessions"),
  });
}

/**
 * A route's JSON body, checked: size (413), JSON and object shape (400), then `schema` (400 naming
 * the fields).
 */
export function readJsonBody<T>(event: HttpEvent, schema: z.ZodType<T>, maxBytes: number): T {
  const raw = parseJsonBody(event, maxBytes);
  checkJsonShape(raw);
  return parseOrBadRequest(schema, raw);
}

/** Validates `value` with `schema`, or throws a 400 naming the first fields that are wrong. */
export function parseOrBadRequest<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new BadRequestError(formatIssues(parsed.error.issues));
}

/** `timeout: must be ...; browserSettings.viewport.width: ...` (at most three issues). */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .flatMap(unionBranchIssues)
    .slice(0, 3)
    .map((issue) => {
      const path = issue.path.map(String).join(".");
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join("; ");
}

/**
 * A union issue says only "Invalid input". When exactly one branch failed below the value itself
 * (the value had that branch's shape, e.g. an array of proxies with a bad entry), its issues name
 * the field that is wrong, so report those instead.
 */
function unionBranchIssues(issue: z.core.$ZodIssue): z.core.$ZodIssue[] {
  if (issue.code !== "invalid_union") return [issue];
  const deeper = issue.errors.filter(
    (branch) => branch.length > 0 && branch.every((inner) => inner.path.length > 0),
  );
  if (deeper.length !== 1) return [issue];
  return deeper[0].flatMap((inner) => unionBranchIssues({ ...inner, path: [...issue.path, ...inner.path] }));
}

/** JSON nesting allowed in a request body; deeper documents are refused before anything walks them. */
export const MAX_JSON_DEPTH = 32;

/**
 * Refuses bodies nested deeper than MAX_JSON_DEPTH and objects with a `__proto__` key (which
 * would change an object's prototype when copied), naming where. Iterative, so depth cannot
 * overflow the stack.
 */
export function checkJsonShape(value: unknown): void {
  const stack: { value: unknown; depth: number; path: string }[] = [{ value, depth: 0, path: "" }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    if (typeof item.value !== "object" || item.value === null) continue;
    if (item.depth >= MAX_JSON_DEPTH) {
      throw new BadRequestError(
        `request body nests deeper than ${MAX_JSON_DEPTH} levels at ${item.path || "(root)"}`,
      );
    }
    for (const key of Object.keys(item.value)) {
      const path = item.path ? `${item.path}.${key}` : key;
      if (key === "__proto__") throw new BadRequestError(`${path}: the key __proto__ is not allowed`);
      stack.push({ value: (item.value as Record<string, unknown>)[key], depth: item.depth + 1, path });
    }
  }
}
