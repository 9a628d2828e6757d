import { expect } from "chai";
import { decodeProtectedHeader, jwtDecrypt } from "jose";
import {
  decryptForProxy,
  encryptForProxy,
  mintSessionToken,
  randomNonce,
  parseTokenKeySet,
  rotateTokenKeySet,
  TokenError,
  verifySessionToken,
  type TokenFailure,
  type TokenKeySet,
  type TokenScope,
} from "../../lib/tokens";

const ISSUER = "wallcrawler-api";
const AUDIENCE = "wallcrawler-proxy";
const OPTIONS = { issuer: ISSUER, audience: AUDIENCE };
const NOW = 1_800_000_000;
const SESSION = "3f0c1a52-8d5e-4c1b-9a57-0d2a1f6e9b11";

function mint(
  set: TokenKeySet,
  overrides: Partial<{ sessionId: string; scope: TokenScope; expiresAt: number; now: number }> = {},
  options = OPTIONS,
): Promise<string> {
  return mintSessionToken(
    set,
    {
      sessionId: SESSION,
      projectId: "proj-1",
      principalId: "prn_abc",
      scope: "connect",
      expiresAt: NOW + 300,
      now: NOW,
      ...overrides,
    },
    options,
  );
}

/** Verifies and returns the TokenError reason; fails the test when the token is accepted. */
async function refusal(
  token: string,
  set: TokenKeySet,
  overrides: Partial<Parameters<typeof verifySessionToken>[2]> = {},
): Promise<TokenFailure> {
  try {
    await verifySessionToken(token, set, { ...OPTIONS, sessionId: SESSION, now: NOW + 10, ...overrides });
  } catch (error) {
    expect(error).to.be.instanceOf(TokenError);
    return (error as TokenError).reason;
  }
  expect.fail("the token was accepted");
}

/** Flips the low bit of byte `index` of the decoded JWE part `part` (0 header .. 4 tag). */
function flipByte(token: string, part: number, index = 0): string {
  const parts = token.split(".");
  const bytes = Buffer.from(parts[part], "base64url");
  bytes[index] ^= 0x01;
  parts[part] = bytes.toString("base64url");
  return parts.join(".");
}

describe("session tokens", () => {
  const set = rotateTokenKeySet(undefined, "kid-1");

  describe("minting", () => {
    it("makes a compact JWE with dir/A256GCM whose protected header names the current key", async () => {
      const token = await mint(set);
      expect(token.split(".")).to.have.length(5);
      expect(token.split(".")[1], "dir has no encrypted key").to.equal("");
      const header = decodeProtectedHeader(token);
      expect(header).to.include({ alg: "dir", enc: "A256GCM", kid: "kid-1" });
    });

    it("encrypts claims that decrypt with the key to sub, exp, iss, aud, project and principal", async () => {
      const token = await mint(set);
      const key = new Uint8Array(Buffer.from(set.keys["kid-1"], "base64url"));
      const { payload } = await jwtDecrypt(token, key, { currentDate: new Date(NOW * 1000) });
      expect(payload.sub).to.equal(SESSION);
      expect(payload.exp).to.equal(NOW + 300);
      expect(payload.iat).to.equal(NOW);
      expect(payload.nbf).to.equal(NOW);
      expect(payload.iss).to.equal(ISSUER);
      expect(payload.aud).to.equal(AUDIENCE);
      expect(payload.projectId).to.equal("proj-1");
      expect(payload.principalId).to.equal("prn_abc");
      expect(payload.scope).to.equal("connect");
      expect(payload.jti).to.be.a("string").with.length.greaterThan(10);
    });

    it("does not carry the project or principal id in readable form", async () => {
      const token = await mint(set);
      const readable = token
        .split(".")
        .map((part) => Buffer.from(part, "base64url").toString("latin1"))
        .join(" ");
      expect(readable).not.to.include("proj-1");
      expect(readable).not.to.include("prn_abc");
      expect(readable).not.to.include(SESSION);
    });

    it("gives every token its own jti", async () => {
      const a = await verifySessionToken(await mint(set), set, { ...OPTIONS, sessionId: SESSION, now: NOW });
      const b = await verifySessionToken(await mint(set), set, { ...OPTIONS, sessionId: SESSION, now: NOW });
      expect(a.tokenId).not.to.equal(b.tokenId);
    });

    it("gives every token its own 96-bit nonce", async () => {
      const nonces = new Set<string>();
      for (let i = 0; i < 2000; i++) {
        const iv = Buffer.from((await mint(set)).split(".")[2], "base64url");
        expect(iv).to.have.length(12);
        nonces.add(iv.toString("hex"));
      }
      expect(nonces.size).to.equal(2000);
    });

    it("draws nonces whose every bit varies (no fixed version or variant bits of the UUID)", () => {
      // Over 512 nonces, a bit that never changes is fixed; a random bit stays put with 2^-511.
      let ones = Buffer.alloc(12);
      let zeros = Buffer.alloc(12);
      for (let i = 0; i < 512; i++) {
        const nonce = randomNonce();
        ones = Buffer.from(ones.map((b, j) => b | nonce[j]));
        zeros = Buffer.from(zeros.map((b, j) => b | ~nonce[j]));
      }
      expect(ones.toString("hex")).to.equal("ff".repeat(12));
      expect(zeros.toString("hex")).to.equal("ff".repeat(12));
    });
  });

  describe("verifySessionToken", () => {
    it("returns the claims of a valid token for its own session", async () => {
      const claims = await verifySessionToken(await mint(set), set, {
        ...OPTIONS,
        sessionId: SESSION,
        now: NOW + 10,
      });
      expect(claims).to.deep.include({
        sessionId: SESSION,
        projectId: "proj-1",
        principalId: "prn_abc",
        scope: "connect",
        expiresAt: NOW + 300,
        issuedAt: NOW,
        notBefore: NOW,
      });
    });

    it("refuses a token issued for another session", async () => {
      const token = await mint(set);
      expect(await refusal(token, set, { sessionId: "another-session" })).to.equal("wrong_session");
    });

    it("refuses a token after its expiry (past the clock tolerance)", async () => {
      const token = await mint(set, { expiresAt: NOW + 60 });
      expect(await refusal(token, set, { now: NOW + 60 + 6 })).to.equal("expired");
    });

    it("accepts a token just past expiry within the clock tolerance and refuses it with none", async () => {
      const token = await mint(set, { expiresAt: NOW + 60 });
      await verifySessionToken(token, set, { ...OPTIONS, sessionId: SESSION, now: NOW + 62 });
      expect(await refusal(token, set, { now: NOW + 62, clockToleranceSeconds: 0 })).to.equal("expired");
    });

    it("refuses a token before its nbf", async () => {
      const token = await mint(set, { now: NOW + 100, expiresAt: NOW + 400 });
      expect(await refusal(token, set, { now: NOW })).to.equal("not_yet_valid");
    });

    it("refuses a token with a flipped byte in the protected header", async () => {
      // A flipped byte in "typ" is refused by the header check; one in "kid", naming a key the set
      // has (here: the same bytes under a second name), is still valid JSON, but the header is the
      // AEAD's additional data, so decryption must fail.
      const token = await mint(set);
      const header = Buffer.from(token.split(".")[0], "base64url").toString("utf8");
      const typ = header.indexOf('"JWT"') + 1;
      expect(typ).to.be.greaterThan(0);
      expect(await refusal(flipByte(token, 0, typ), set)).to.equal("malformed");
      const kid = header.indexOf(`"${set.current}"`) + 1;
      const flipped = flipByte(token, 0, kid);
      const renamed = JSON.parse(Buffer.from(flipped.split(".")[0], "base64url").toString("utf8"))
        .kid as string;
      const twin = { ...set, keys: { ...set.keys, [renamed]: set.keys[set.current] } };
      expect(await refusal(flipped, twin)).to.equal("decryption_failed");
    });

    it("refuses a token whose header is no longer JSON", async () => {
      const token = await mint(set);
      expect(await refusal(flipByte(token, 0, 0), set)).to.equal("malformed");
    });

    it("refuses a token with a byte in the (empty) encrypted-key part", async () => {
      const parts = (await mint(set)).split(".");
      parts[1] = Buffer.from([0x01]).toString("base64url");
      expect(await refusal(parts.join("."), set)).to.equal("malformed");
    });

    for (const [part, name] of [
      [2, "initialization vector"],
      [3, "ciphertext"],
      [4, "authentication tag"],
    ] as const) {
      it(`refuses a token with a flipped byte in the ${name}`, async () => {
        const token = await mint(set);
        expect(await refusal(flipByte(token, part, 0), set)).to.equal("decryption_failed");
        const last = Buffer.from(token.split(".")[part], "base64url").length - 1;
        expect(await refusal(flipByte(token, part, last), set)).to.equal("decryption_failed");
      });
    }

    it("refuses a token made with a key id the set does not have", async () => {
      const other = rotateTokenKeySet(undefined, "kid-elsewhere");
      expect(await refusal(await mint(other), set)).to.equal("unknown_key");
    });

    it("refuses a key id that names an inherited object property", async () => {
      const forged: TokenKeySet = {
        current: "constructor",
        keys: { constructor: Buffer.alloc(32, 7).toString("base64url") },
      };
      expect(await refusal(await mint(forged), set)).to.equal("unknown_key");
    });

    it("refuses a token made with a different key under the same key id", async () => {
      const impostor = rotateTokenKeySet(undefined, "kid-1");
      expect(impostor.keys["kid-1"]).not.to.equal(set.keys["kid-1"]);
      expect(await refusal(await mint(impostor), set)).to.equal("decryption_failed");
    });

    it("refuses a token with the wrong issuer", async () => {
      const token = await mint(set, {}, { issuer: "someone-else", audience: AUDIENCE });
      expect(await refusal(token, set)).to.equal("wrong_issuer");
    });

    it("refuses a token with the wrong audience", async () => {
      const token = await mint(set, {}, { issuer: ISSUER, audience: "another-proxy" });
      expect(await refusal(token, set)).to.equal("wrong_audience");
    });

    it("refuses a debug token where a connect token is needed, and the reverse", async () => {
      const debugToken = await mint(set, { scope: "debug" });
      expect(await refusal(debugToken, set)).to.equal("wrong_scope");
      const claims = await verifySessionToken(debugToken, set, {
        ...OPTIONS,
        sessionId: SESSION,
        scope: "debug",
        now: NOW,
      });
      expect(claims.scope).to.equal("debug");
      expect(await refusal(await mint(set), set, { scope: "debug" })).to.equal("wrong_scope");
    });

    it("refuses strings that are not compact JWEs", async () => {
      for (const token of ["", "abc", "a.b.c", "a.b.c.d.e.f", "....."]) {
        expect(await refusal(token, set), JSON.stringify(token)).to.equal("malformed");
      }
    });
  });

  describe("key rotation", () => {
    it("keeps verifying a token minted under the old key after a new key becomes current", async () => {
      const before = rotateTokenKeySet(undefined, "old");
      const oldToken = await mint(before);
      const after = rotateTokenKeySet(before, "new");
      expect(after.current).to.equal("new");
      expect(after.keys.old).to.equal(before.keys.old);
      const claims = await verifySessionToken(oldToken, after, { ...OPTIONS, sessionId: SESSION, now: NOW });
      expect(claims.sessionId).to.equal(SESSION);
    });

    it("mints new tokens under the new key, which the old set cannot verify", async () => {
      const before = rotateTokenKeySet(undefined, "old");
      const after = rotateTokenKeySet(before, "new");
      const newToken = await mint(after);
      expect(decodeProtectedHeader(newToken).kid).to.equal("new");
      expect(await refusal(newToken, before)).to.equal("unknown_key");
    });

    it("makes a fresh key id that the set parser accepts when none is given", () => {
      const first = rotateTokenKeySet();
      const second = rotateTokenKeySet(first);
      expect(second.current).not.to.equal(first.current);
      expect(Object.keys(second.keys)).to.have.members([first.current, second.current]);
      expect(parseTokenKeySet(JSON.stringify(second))).to.deep.equal(second);
      expect(Buffer.from(second.keys[second.current], "base64url")).to.have.length(32);
    });
  });

  describe("parseTokenKeySet", () => {
    const key = Buffer.alloc(32, 1).toString("base64url");

    it("accepts a well-formed set", () => {
      const raw = JSON.stringify({ current: "a", keys: { a: key, b: key } });
      expect(parseTokenKeySet(raw)).to.deep.equal({ current: "a", keys: { a: key, b: key } });
    });

    const bad: [string, unknown, RegExp][] = [
      ["no current key id", { keys: { a: key } }, /current/],
      ["a current key the set lacks", { current: "b", keys: { a: key } }, /current key b/],
      [
        "a key of the wrong length",
        { current: "a", keys: { a: Buffer.alloc(16).toString("base64url") } },
        /a must be 32 bytes/,
      ],
      [
        "a key id with characters outside base64url",
        { current: "a", keys: { a: key, "b/c": key } },
        /malformed/,
      ],
      ["a key that is not a string", { current: "a", keys: { a: 42 } }, /keys\.a/],
      ["no keys", { current: "a" }, /keys/],
      ["an array", [], /malformed/],
    ];
    for (const [what, value, message] of bad) {
      it(`rejects a set with ${what}`, () => {
        expect(() => parseTokenKeySet(JSON.stringify(value))).to.throw(message);
      });
    }

    it("rejects text that is not JSON", () => {
      expect(() => parseTokenKeySet("not json")).to.throw();
    });
  });

  describe("encryptForProxy / decryptForProxy", () => {
    const value = { proxies: [{ type: "external", server: "http://p:8080", password: "s3cret" }] };

    it("round-trips a JSON value that the ciphertext does not reveal", async () => {
      const jwe = await encryptForProxy(set, value);
      expect(jwe).not.to.include("s3cret");
      expect(Buffer.from(jwe.split(".")[3], "base64url").toString("latin1")).not.to.include("s3cret");
      expect(decodeProtectedHeader(jwe).kid).to.equal("kid-1");
      expect(await decryptForProxy(set, jwe)).to.deep.equal(value);
    });

    it("still decrypts after rotation and refuses a set without the key", async () => {
      const jwe = await encryptForProxy(set, value);
      expect(await decryptForProxy(rotateTokenKeySet(set, "kid-2"), jwe)).to.deep.equal(value);
      const stranger = rotateTokenKeySet(undefined, "kid-x");
      let caught: unknown;
      await decryptForProxy(stranger, jwe).catch((error) => (caught = error));
      expect(caught).to.be.instanceOf(TokenError);
      expect((caught as TokenError).reason).to.equal("unknown_key");
    });

    it("refuses a tampered ciphertext", async () => {
      const jwe = await encryptForProxy(set, value);
      let caught: unknown;
      await decryptForProxy(set, flipByte(jwe, 3, 0)).catch((error) => (caught = error));
      expect(caught, "tampered value was decrypted").to.be.instanceOf(Error);
    });
  });
});
