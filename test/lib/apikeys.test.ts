import { createHash } from "node:crypto";
import { expect } from "chai";
import {
  API_KEY_PATTERN,
  authenticate,
  generateApiKey,
  hashApiKey,
  parseApiKeySet,
  principalIdFor,
  type ApiKeyEntry,
  type ApiKeyIndex,
} from "../../lib/apikeys";
import { isHttpError, type HttpError } from "../../lib/errors";

function indexOf(...entries: ApiKeyEntry[]): ApiKeyIndex {
  return parseApiKeySet(JSON.stringify({ keys: entries }));
}

function unauthorized(presented: string | undefined, index: ApiKeyIndex): HttpError {
  try {
    authenticate(presented, index, 25);
  } catch (error) {
    expect(isHttpError(error), String(error)).to.equal(true);
    const httpError = error as HttpError;
    expect(httpError.statusCode).to.equal(401);
    expect(httpError.expose).to.equal(true);
    return httpError;
  }
  expect.fail(`key ${String(presented)} was accepted`);
}

describe("API keys", () => {
  describe("generateApiKey", () => {
    it("mints wc_ followed by 43 base64url characters encoding 32 random bytes", () => {
      const { key } = generateApiKey("proj");
      expect(key).to.match(/^wc_[A-Za-z0-9_-]{43}$/);
      expect(key).to.match(API_KEY_PATTERN);
      expect(Buffer.from(key.slice(3), "base64url")).to.have.length(32);
      expect(generateApiKey("proj").key).not.to.equal(key);
    });

    it("puts only the key's SHA-256 hash in the entry, never the key text", () => {
      const { key, entry } = generateApiKey("proj", { concurrency: 3, name: "ci", now: new Date(0) });
      expect(entry).to.deep.equal({
        hash: hashApiKey(key),
        projectId: "proj",
        concurrency: 3,
        name: "ci",
        createdAt: "1970-01-01T00:00:00.000Z",
      });
      expect(entry.hash).to.match(/^sha256:[0-9a-f]{64}$/);
      const stored = JSON.stringify(entry);
      expect(stored).not.to.include(key);
      expect(stored).not.to.include(key.slice(3, 20));
    });

    it("hashes keys as sha256 hex of the whole key text", () => {
      expect(hashApiKey("wc_test")).to.equal(
        "sha256:" + createHash("sha256").update("wc_test", "utf8").digest("hex"),
      );
      expect(hashApiKey("wc_a")).not.to.equal(hashApiKey("wc_b"));
    });

    it("refuses a project id that the secret format does not allow", () => {
      expect(() => generateApiKey("")).to.throw(/projectId/);
      expect(() => generateApiKey("has space")).to.throw(/projectId/);
      expect(() => generateApiKey("-leading-dash")).to.throw(/projectId/);
      expect(() => generateApiKey("x".repeat(65))).to.throw(/projectId/);
    });
  });

  describe("authenticate", () => {
    const alpha = generateApiKey("alpha", { name: "alpha key" });
    const beta = generateApiKey("beta", { concurrency: 7 });
    const index = indexOf(alpha.entry, beta.entry);

    it("resolves a known key to its project and a principal id derived from its hash", () => {
      const principal = authenticate(alpha.key, index, 25);
      expect(principal.projectId).to.equal("alpha");
      expect(principal.principalId).to.equal(principalIdFor(alpha.entry.hash));
      expect(principal.principalId).to.match(/^prn_[A-Za-z0-9_-]{22}$/);
      expect(principal.keyName).to.equal("alpha key");
    });

    it("gives a stable principal id that reveals neither key nor hash", () => {
      const first = authenticate(alpha.key, index, 25).principalId;
      const reparsed = indexOf(beta.entry, alpha.entry);
      expect(authenticate(alpha.key, reparsed, 25).principalId).to.equal(first);
      expect(principalIdFor(alpha.entry.hash)).to.equal(first);
      expect(authenticate(beta.key, index, 25).principalId).not.to.equal(first);
      expect(first).not.to.include(alpha.entry.hash.slice(7, 20));
      expect(first).not.to.include(alpha.key.slice(3, 12));
    });

    it("uses the default concurrency when the entry sets none, else the entry's", () => {
      expect(authenticate(alpha.key, index, 25).concurrency).to.equal(25);
      expect(authenticate(alpha.key, index, 3).concurrency).to.equal(3);
      expect(authenticate(beta.key, index, 25).concurrency).to.equal(7);
    });

    it("answers 401 telling the caller to send a key when none is given", () => {
      for (const presented of [undefined, ""]) {
        expect(unauthorized(presented, index).message).to.equal(
          "Missing API key: send it in the X-BB-API-Key header.",
        );
      }
    });

    it("answers 401 describing the key format for a malformed key", () => {
      for (const presented of [
        "abc",
        "wc_short",
        alpha.key + "x",
        alpha.key.slice(0, -1),
        "bb_" + alpha.key.slice(3),
        alpha.key.slice(0, -1) + "=",
        " " + alpha.key,
      ]) {
        expect(unauthorized(presented, index).message, presented).to.match(
          /^Malformed API key: keys look like wc_/,
        );
      }
    });

    it("answers 401 Invalid API key for a well-formed key that is not in the set", () => {
      expect(unauthorized(generateApiKey("alpha").key, index).message).to.equal("Invalid API key.");
      const last = alpha.key.at(-1) === "A" ? "B" : "A";
      expect(unauthorized(alpha.key.slice(0, -1) + last, index).message).to.equal("Invalid API key.");
    });

    it("does not echo the presented key in its messages", () => {
      const presented = generateApiKey("x").key;
      expect(unauthorized(presented, index).message).not.to.include(presented.slice(3));
    });
  });

  describe("parseApiKeySet", () => {
    const valid = generateApiKey("proj").entry;

    it("indexes the entries by hash", () => {
      const other = generateApiKey("other").entry;
      const index = indexOf(valid, other);
      expect(index.size).to.equal(2);
      expect(index.get(valid.hash)?.projectId).to.equal("proj");
      expect(index.get(other.hash)?.projectId).to.equal("other");
    });

    it("accepts an empty key list", () => {
      expect(parseApiKeySet('{"keys": []}').size).to.equal(0);
    });

    const cases: [string, unknown, RegExp][] = [
      [
        "a hash that is not sha256 hex",
        { keys: [{ ...valid, hash: "sha256:xyz" }] },
        /keys\.0\.hash: hash must be sha256/,
      ],
      [
        "a hash of the key text itself",
        { keys: [valid, { ...valid, hash: "wc_" + "a".repeat(43) }] },
        /keys\.1\.hash/,
      ],
      [
        "a bad project id",
        { keys: [{ ...valid, projectId: "no spaces" }] },
        /keys\.0\.projectId: projectId must be/,
      ],
      ["a missing project id", { keys: [{ hash: valid.hash }] }, /keys\.0\.projectId/],
      ["a zero concurrency", { keys: [{ ...valid, concurrency: 0 }] }, /keys\.0\.concurrency/],
      ["a fractional concurrency", { keys: [{ ...valid, concurrency: 1.5 }] }, /keys\.0\.concurrency/],
      ["a non-string name", { keys: [{ ...valid, name: 5 }] }, /keys\.0\.name/],
      ["no keys array", { entries: [] }, /malformed at keys/],
      ["a bare array", [valid], /malformed at \(root\)/],
    ];
    for (const [what, value, message] of cases) {
      it(`rejects a secret with ${what}, naming the field`, () => {
        expect(() => parseApiKeySet(JSON.stringify(value))).to.throw(message);
      });
    }
  });
});
