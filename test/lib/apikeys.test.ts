import { createHash } from "node:crypto";
import { expect } from "chai";
import {
  API_KEY_PATTERN,
  authenticate,
  generateApiKey,
  hashApiKey,
  listProjects,
  parseApiKeySet,
  principalIdFor,
  resolveProject,
  type ApiKeyDirectory,
  type ApiKeyEntry,
  type ProjectEntry,
} from "../../lib/apikeys";
import { isHttpError, type HttpError } from "../../lib/errors";

const DEFAULTS = { concurrency: 25, defaultTimeout: 300 };

function indexOf(...entries: ApiKeyEntry[]): ApiKeyDirectory {
  return parseApiKeySet(JSON.stringify({ keys: entries }));
}

function directoryOf(keys: ApiKeyEntry[], projects?: ProjectEntry[]): ApiKeyDirectory {
  return parseApiKeySet(JSON.stringify({ keys, projects }));
}

function unauthorized(presented: string | undefined, index: ApiKeyDirectory): HttpError {
  try {
    authenticate(presented, index, DEFAULTS);
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
      const { key, entry } = generateApiKey("proj", { name: "ci", now: new Date(0) });
      expect(entry).to.deep.equal({
        hash: hashApiKey(key),
        projectId: "proj",
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
    const beta = generateApiKey("beta");
    const index = directoryOf(
      [alpha.entry, beta.entry],
      [{ id: "beta", concurrency: 7, defaultTimeout: 900 }],
    );

    it("resolves a known key to its project and a principal id derived from its hash", () => {
      const principal = authenticate(alpha.key, index, DEFAULTS);
      expect(principal.projectId).to.equal("alpha");
      expect(principal.principalId).to.equal(principalIdFor(alpha.entry.hash));
      expect(principal.principalId).to.match(/^prn_[A-Za-z0-9_-]{22}$/);
      expect(principal.keyName).to.equal("alpha key");
    });

    it("gives a stable principal id that reveals neither key nor hash", () => {
      const first = authenticate(alpha.key, index, DEFAULTS).principalId;
      const reparsed = indexOf(beta.entry, alpha.entry);
      expect(authenticate(alpha.key, reparsed, DEFAULTS).principalId).to.equal(first);
      expect(principalIdFor(alpha.entry.hash)).to.equal(first);
      expect(authenticate(beta.key, index, DEFAULTS).principalId).not.to.equal(first);
      expect(first).not.to.include(alpha.entry.hash.slice(7, 20));
      expect(first).not.to.include(alpha.key.slice(3, 12));
    });

    it("gives the project's limit and default timeout, else the defaults", () => {
      expect(authenticate(alpha.key, index, DEFAULTS)).to.deep.include({
        concurrency: 25,
        defaultTimeout: 300,
      });
      expect(authenticate(alpha.key, index, { concurrency: 3, defaultTimeout: 60 })).to.deep.include({
        concurrency: 3,
        defaultTimeout: 60,
      });
      expect(authenticate(beta.key, index, DEFAULTS)).to.deep.include({
        concurrency: 7,
        defaultTimeout: 900,
      });
    });

    it("gives every key of a project the same limit, whichever key is presented", () => {
      const second = generateApiKey("beta", { name: "second" });
      const both = directoryOf([beta.entry, second.entry], [{ id: "beta", concurrency: 5 }]);
      expect(authenticate(beta.key, both, DEFAULTS).concurrency).to.equal(5);
      expect(authenticate(second.key, both, DEFAULTS).concurrency).to.equal(5);
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
      expect(index.keys.size).to.equal(2);
      expect(index.keys.get(valid.hash)?.projectId).to.equal("proj");
      expect(index.keys.get(other.hash)?.projectId).to.equal("other");
    });

    it("accepts an empty key list, with or without projects", () => {
      expect(parseApiKeySet('{"keys": []}').keys.size).to.equal(0);
      const withProjects = parseApiKeySet('{"keys": [], "projects": [{"id": "lonely"}]}');
      expect([...withProjects.projects.keys()]).to.deep.equal(["lonely"]);
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
      ["a project without id", { keys: [], projects: [{ concurrency: 3 }] }, /projects\.0\.id/],
      [
        "a project limit of 0",
        { keys: [], projects: [{ id: "p", concurrency: 0 }] },
        /projects\.0\.concurrency: concurrency must be at least 1/,
      ],
      [
        "a project default timeout under 60 s",
        { keys: [], projects: [{ id: "p", defaultTimeout: 59 }] },
        /projects\.0\.defaultTimeout/,
      ],
      [
        "a project that appears twice",
        { keys: [], projects: [{ id: "p" }, { id: "p", concurrency: 2 }] },
        /projects\.1\.id: project p appears twice/,
      ],
      ["a bare array", [valid], /malformed at \(root\)/],
    ];
    for (const [what, value, message] of cases) {
      it(`rejects a secret with ${what}, naming the field`, () => {
        expect(() => parseApiKeySet(JSON.stringify(value))).to.throw(message);
      });
    }
  });

  describe("projects", () => {
    const key = (projectId: string, concurrency?: number, createdAt?: string): ApiKeyEntry => ({
      ...generateApiKey(projectId, createdAt ? { now: new Date(createdAt) } : {}).entry,
      ...(concurrency === undefined ? {} : { concurrency }),
    });

    it("a project's entry wins over limits written on its keys (which are then ignored)", () => {
      const directory = directoryOf([key("acme", 2), key("acme", 40)], [{ id: "acme", concurrency: 10 }]);
      expect(resolveProject(directory, "acme", DEFAULTS)?.concurrency).to.equal(10);
      // An entry without a limit takes the default, not the keys' values either.
      const noLimit = directoryOf([key("acme", 2)], [{ id: "acme", name: "Acme" }]);
      expect(resolveProject(noLimit, "acme", DEFAULTS)).to.deep.include({ concurrency: 25, name: "Acme" });
    });

    it("a project without entry takes the smallest limit on its keys, else the default", () => {
      const directory = directoryOf([key("legacy", 7), key("legacy", 3), key("legacy"), key("plain")]);
      expect(resolveProject(directory, "legacy", DEFAULTS)?.concurrency).to.equal(3);
      expect(resolveProject(directory, "plain", DEFAULTS)?.concurrency).to.equal(25);
      expect(resolveProject(directory, "nobody", DEFAULTS)).to.equal(undefined);
    });

    it("a new key without a limit never raises its project's limit (the reported bug: 5 became 25)", () => {
      for (const projects of [undefined, [{ id: "acme", concurrency: 5 }]]) {
        const first = key("acme", projects ? undefined : 5);
        const before = directoryOf([first], projects);
        const after = directoryOf([first, key("acme")], projects);
        expect(resolveProject(before, "acme", DEFAULTS)?.concurrency, JSON.stringify(projects)).to.equal(5);
        expect(resolveProject(after, "acme", DEFAULTS)?.concurrency, JSON.stringify(projects)).to.equal(5);
        const newKey = generateApiKey("acme");
        const withNew = directoryOf([first, newKey.entry], projects);
        expect(authenticate(newKey.key, withNew, DEFAULTS).concurrency).to.equal(5);
      }
    });

    it("resolves every field of an entry, with the defaults and the self-hosted owner for the rest", () => {
      const directory = directoryOf(
        [
          key("derived", 4, "2024-03-01T00:00:00.000Z"),
          key("derived", undefined, "2024-01-01T00:00:00.000Z"),
        ],
        [
          {
            id: "full",
            name: "Full",
            concurrency: 9,
            defaultTimeout: 1200,
            ownerId: "team-a",
            createdAt: "2024-05-01T00:00:00.000Z",
            updatedAt: "2024-06-01T00:00:00.000Z",
          },
          { id: "bare", createdAt: "2024-02-02T00:00:00.000Z" },
        ],
      );
      expect(listProjects(directory, DEFAULTS)).to.deep.equal([
        {
          id: "bare",
          name: "bare",
          concurrency: 25,
          defaultTimeout: 300,
          ownerId: "self-hosted",
          createdAt: "2024-02-02T00:00:00.000Z",
          updatedAt: "2024-02-02T00:00:00.000Z",
        },
        {
          id: "derived",
          name: "derived",
          concurrency: 4,
          defaultTimeout: 300,
          ownerId: "self-hosted",
          createdAt: "2024-01-01T00:00:00.000Z",
          updatedAt: "2024-01-01T00:00:00.000Z",
        },
        {
          id: "full",
          name: "Full",
          concurrency: 9,
          defaultTimeout: 1200,
          ownerId: "team-a",
          createdAt: "2024-05-01T00:00:00.000Z",
          updatedAt: "2024-06-01T00:00:00.000Z",
        },
      ]);
    });
  });
});
