import { createCipheriv, randomBytes, randomUUID } from "node:crypto";
import { CompactEncrypt, compactDecrypt, jwtDecrypt, errors as joseErrors, type JWTPayload } from "jose";
import { z } from "zod";

/**
 * The token key set as stored in Secrets Manager: `current` names the key new tokens are made
 * with; every key in `keys` still decrypts, so a key can be rotated in without downtime.
 */
export interface TokenKeySet {
  current: string;
  keys: Record<string, string>;
}

/** What a session token says. `sub` on the wire is `sessionId`. */
export interface SessionTokenClaims {
  sessionId: string;
  projectId: string;
  principalId: string;
  /** `connect` for the session's connectUrl, `debug` for the debugger URLs. */
  scope: TokenScope;
  /** Unix seconds; the session's `expiresAt` for connect tokens. */
  expiresAt: number;
  issuedAt: number;
  notBefore: number;
  tokenId: string;
}

/** `upload` tokens are for the local stack's context-upload endpoint (their `sub` is the context id). */
export type TokenScope = "connect" | "debug" | "upload";

export interface TokenOptions {
  issuer: string;
  audience: string;
}

const KID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** Parses and checks a token key set (from Secrets Manager or the local secrets file). */
export function parseTokenKeySet(raw: string): TokenKeySet {
  const parsed = z
    .object({
      current: z.string().regex(KID_PATTERN),
      keys: z.record(z.string().regex(KID_PATTERN), z.string()),
    })
    .safeParse(JSON.parse(raw));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`token key set is malformed at ${issue?.path.join(".") || "(root)"}: ${issue?.message}`);
  }
  const set = parsed.data;
  for (const [kid, key] of Object.entries(set.keys)) {
    if (Buffer.from(key, "base64url").length !== 32)
      throw new Error(`token key ${kid} must be 32 bytes of base64url`);
  }
  if (!(set.current in set.keys))
    throw new Error(`token key set names current key ${set.current} but has no such key`);
  return set;
}

/** A fresh key set with one random key, or `existing` with a new key added and made current. */
export function rotateTokenKeySet(existing?: TokenKeySet, kid?: string): TokenKeySet {
  const newKid =
    kid ??
    "k" + new Date().toISOString().slice(0, 10).replace(/-/g, "") + "-" + randomBytes(3).toString("hex");
  return {
    current: newKid,
    keys: { ...(existing?.keys ?? {}), [newKid]: randomBytes(32).toString("base64url") },
  };
}

/** The key `kid` of the set, base64url (an inherited property name is no key). */
function encodedKey(set: TokenKeySet, kid: string): string | undefined {
  return Object.prototype.hasOwnProperty.call(set.keys, kid) ? set.keys[kid] : undefined;
}

/** The key as jose takes it: its own bytes (not a view of Buffer's shared pool). */
function keyBytes(set: TokenKeySet, kid: string): Uint8Array | undefined {
  const key = encodedKey(set, kid);
  return key === undefined ? undefined : new Uint8Array(Buffer.from(key, "base64url"));
}

/**
 * A fresh 96-bit AES-GCM nonce from the CSPRNG, without a native call per token: randomUUID()
 * serves version-4 UUIDs from random bytes node:crypto fetches 128 UUIDs at a time, and the 24 hex
 * digits taken here carry no version or variant bits, so they are 96 random bits. (randomBytes(12)
 * made a native job object per token, and the garbage collector finalized each one in its next
 * scavenge, which lengthened every pause.)
 */
export function randomNonce(): Buffer {
  const uuid = randomUUID(); // xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx
  return Buffer.from(uuid.slice(0, 8) + uuid.slice(9, 13) + uuid.slice(24), "hex");
}

/**
 * Mints a session token: a compact JWE (`dir` + `A256GCM`) under the set's current key, whose
 * protected header names the key (`kid`). The payload is encrypted, so the Proxy is the only
 * party that can read project and principal ids.
 *
 * Encrypted with node:crypto's AES-256-GCM directly rather than jose's WebCrypto path: minting
 * is on every create and retrieve, and jose's asynchronous encrypt cost about 300 µs of CPU per
 * token (`npm run bench`, bench/pieces.ts) against tens of µs here. The format is RFC 7516's
 * compact serialization; jose still does every verification (`verifySessionToken`), and the
 * tests verify what this mints.
 */
export async function mintSessionToken(
  set: TokenKeySet,
  claims: {
    sessionId: string;
    projectId: string;
    principalId: string;
    scope: TokenScope;
    expiresAt: number;
    now: number;
  },
  options: TokenOptions,
): Promise<string> {
  const encoded = encodedKey(set, set.current);
  if (encoded === undefined) throw new Error("token key set has no current key");
  const key = Buffer.from(encoded, "base64url");
  const iat = Math.floor(claims.now);
  const header = Buffer.from(
    JSON.stringify({ alg: "dir", enc: "A256GCM", kid: set.current, typ: "JWT" }),
  ).toString("base64url");
  const payload = JSON.stringify({
    projectId: claims.projectId,
    principalId: claims.principalId,
    scope: claims.scope,
    iss: options.issuer,
    aud: options.audience,
    sub: claims.sessionId,
    jti: randomUUID(),
    iat,
    nbf: iat,
    exp: Math.floor(claims.expiresAt),
  });
  const iv = randomNonce();
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  // The additional authenticated data is the ASCII of the encoded protected header (RFC 7516 5.1).
  cipher.setAAD(Buffer.from(header, "ascii"));
  const ciphertext = Buffer.concat([cipher.update(payload, "utf8"), cipher.final()]);
  const tag = cipher.getAuthTag();
  return `${header}..${iv.toString("base64url")}.${ciphertext.toString("base64url")}.${tag.toString("base64url")}`;
}

/** Why a token was refused. The Proxy maps all of these to 401 on the WebSocket upgrade. */
export type TokenFailure =
  | "malformed"
  | "unknown_key"
  | "decryption_failed"
  | "expired"
  | "not_yet_valid"
  | "wrong_issuer"
  | "wrong_audience"
  | "wrong_session"
  | "wrong_scope"
  | "invalid_claims";

export class TokenError extends Error {
  readonly reason: TokenFailure;

  constructor(reason: TokenFailure, message: string) {
    super(message);
    this.message = message;
    this.name = "TokenError";
    this.reason = reason;
  }
}

export interface VerifyOptions extends TokenOptions {
  /** The session id being connected to: the token's `sub` must equal it. */
  sessionId: string;
  /** The scope the caller needs; default `connect`. */
  scope?: TokenScope;
  /** Unix seconds; defaults to now. */
  now?: number;
  /** Allowed clock skew in seconds; default 5. */
  clockToleranceSeconds?: number;
}

/**
 * The verifier the Proxy uses: decrypts with whichever key of the set the token names,
 * checks issuer, audience, `nbf`/`exp` and that the token belongs to `sessionId`.
 * Throws `TokenError` with a machine-readable `reason`; never returns a partly checked token.
 */
export async function verifySessionToken(
  token: string,
  set: TokenKeySet,
  options: VerifyOptions,
): Promise<SessionTokenClaims> {
  const { claims, expired } = await readSessionToken(token, set, options);
  if (expired) throw new TokenError("expired", "token has expired");
  return claims;
}

/** The protected header fields `mintSessionToken` writes, with their only accepted values (kid aside). */
const MINTED_HEADER: Record<string, string | undefined> = {
  alg: "dir",
  enc: "A256GCM",
  typ: "JWT",
  kid: undefined,
};

/** Refuses a protected header with any field this API never mints (`zip`, `cty`, `jku`, ...) or other values. */
function checkProtectedHeader(segment: string): void {
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
  } catch {
    throw new TokenError("malformed", "token header is not JSON");
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new TokenError("malformed", "token header is not a JSON object");
  }
  const extra = Object.keys(header).filter((name) => !(name in MINTED_HEADER));
  if (extra.length > 0) {
    throw new TokenError(
      "malformed",
      `token header has fields this API never mints: ${extra.join(", ").slice(0, 100)}`,
    );
  }
  for (const [name, value] of Object.entries(MINTED_HEADER)) {
    if (value !== undefined && header[name] !== value) {
      throw new TokenError("malformed", `token header ${name} must be ${value}`);
    }
  }
}

/**
 * Like `verifySessionToken`, except that a token past its `exp` (and otherwise genuine: decrypted,
 * issuer, audience, `nbf`, session and scope all checked) is reported with `expired: true` rather
 * than refused, so a Proxy can tell "your token expired" from "your session ended". Nothing else
 * is relaxed: the skew allowed on `nbf` and `exp` is the stated `clockToleranceSeconds` (5 s).
 */
export async function readSessionToken(
  token: string,
  set: TokenKeySet,
  options: VerifyOptions,
): Promise<{ claims: SessionTokenClaims; expired: boolean }> {
  if (typeof token !== "string" || token.split(".").length !== 5) {
    throw new TokenError("malformed", "token is not a compact JWE");
  }
  checkProtectedHeader(token.split(".")[0]);
  // Decoders ignore the spare low bits of a segment's last base64url character, so a token with a
  // non-canonical segment is a modified copy of a real one that would still decrypt: refuse it.
  if (token.split(".").some((part) => Buffer.from(part, "base64url").toString("base64url") !== part)) {
    throw new TokenError("malformed", "token is not canonical base64url");
  }
  let payload: JWTPayload;
  let expired = false;
  try {
    const result = await jwtDecrypt(
      token,
      (header) => {
        const key = typeof header.kid === "string" ? keyBytes(set, header.kid) : undefined;
        if (!key)
          throw new TokenError("unknown_key", "token was made with a key this deployment does not have");
        return key;
      },
      {
        issuer: options.issuer,
        audience: options.audience,
        keyManagementAlgorithms: ["dir"],
        contentEncryptionAlgorithms: ["A256GCM"],
        currentDate: options.now === undefined ? undefined : new Date(options.now * 1000),
        clockTolerance: options.clockToleranceSeconds ?? 5,
        requiredClaims: ["sub", "exp", "nbf", "iat", "jti"],
      },
    );
    payload = result.payload;
  } catch (error) {
    const failure = toTokenError(error);
    // jose checks exp last, after decryption, issuer, audience and nbf: an expired token's payload
    // (carried on the error) has passed every other check.
    const late = (error as { payload?: JWTPayload } | null)?.payload;
    if (failure.reason !== "expired" || !late) throw failure;
    payload = late;
    expired = true;
  }
  if (payload.sub !== options.sessionId) {
    throw new TokenError("wrong_session", "token was issued for another session");
  }
  const scope = payload.scope as TokenScope;
  if (scope !== (options.scope ?? "connect")) {
    throw new TokenError("wrong_scope", `token scope ${String(scope)} does not allow this use`);
  }
  if (typeof payload.projectId !== "string" || typeof payload.principalId !== "string") {
    throw new TokenError("invalid_claims", "token lacks project or principal");
  }
  const claims: SessionTokenClaims = {
    sessionId: payload.sub,
    projectId: payload.projectId,
    principalId: payload.principalId,
    scope,
    expiresAt: payload.exp as number,
    issuedAt: payload.iat as number,
    notBefore: payload.nbf as number,
    tokenId: payload.jti as string,
  };
  return { claims, expired };
}

/** Maps jose's failures by their error code, never by message text. */
function toTokenError(error: unknown): TokenError {
  if (error instanceof TokenError) return error;
  const code = (error as { code?: string } | null)?.code;
  const claim = (error as { claim?: string } | null)?.claim;
  switch (code) {
    case joseErrors.JWTExpired.code:
      return new TokenError("expired", "token has expired");
    case joseErrors.JWTClaimValidationFailed.code:
      if (claim === "nbf") return new TokenError("not_yet_valid", "token is not valid yet");
      if (claim === "iss") return new TokenError("wrong_issuer", "token has the wrong issuer");
      if (claim === "aud") return new TokenError("wrong_audience", "token has the wrong audience");
      return new TokenError("invalid_claims", `token claim ${claim ?? "?"} is invalid`);
    case joseErrors.JWEDecryptionFailed.code:
      return new TokenError("decryption_failed", "token could not be decrypted");
    default:
      if ((error as { reason?: unknown } | null)?.reason === "unknown_key") return error as TokenError;
      return new TokenError("malformed", "token is malformed");
  }
}

/**
 * Encrypts a JSON value for the Proxy (used for proxy credentials in the session record): a
 * compact JWE under the current token key, readable only with the key set.
 */
export async function encryptForProxy(set: TokenKeySet, value: unknown): Promise<string> {
  const key = keyBytes(set, set.current);
  if (!key) throw new Error("token key set has no current key");
  return new CompactEncrypt(new TextEncoder().encode(JSON.stringify(value)))
    .setProtectedHeader({ alg: "dir", enc: "A256GCM", kid: set.current, cty: "json" })
    .encrypt(key);
}

/** The Proxy's counterpart of `encryptForProxy`. */
export async function decryptForProxy(set: TokenKeySet, jwe: string): Promise<unknown> {
  const { plaintext } = await compactDecrypt(
    jwe,
    (header) => {
      const key = typeof header.kid === "string" ? keyBytes(set, header.kid) : undefined;
      if (!key)
        throw new TokenError("unknown_key", "value was encrypted with a key this deployment does not have");
      return key;
    },
    { keyManagementAlgorithms: ["dir"], contentEncryptionAlgorithms: ["A256GCM"] },
  );
  return JSON.parse(new TextDecoder().decode(plaintext));
}
