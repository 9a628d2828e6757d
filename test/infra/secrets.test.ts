import { randomBytes } from "node:crypto";
import { expect } from "chai";
import * as pulumi from "@pulumi/pulumi";
import { authenticate, generateApiKey, parseApiKeySet, resolveProject } from "../../lib/apikeys";
import { parseTokenKeySet, rotateTokenKeySet } from "../../lib/tokens";
import {
  apiKeySetValue,
  checkTokenKeySet,
  projectEntries,
  Secrets,
  tokenKeyPlan,
  tokenKeySetValue,
} from "../../infra/secrets";
import { find, installMocks, isSecretInput, ofType, plain, promiseOf, settle, T } from "./mocks";

describe("infra/secrets", () => {
  describe("apiKeySetValue", () => {
    const DEFAULTS = { concurrency: 25, defaultTimeout: 300 };

    it("writes entries the handlers' parser accepts, hashes only", () => {
      const { key, entry } = generateApiKey("acme", { name: "ci" });
      const value = apiKeySetValue([entry]);
      expect(value).to.not.include(key);
      const index = parseApiKeySet(value);
      expect(index.keys.get(entry.hash)).to.deep.include({ projectId: "acme", name: "ci" });
      // No projects: the value is exactly what it was before projects existed (no new secret version).
      expect(JSON.parse(value)).to.not.have.property("projects");
      expect(parseApiKeySet(apiKeySetValue([])).keys.size).to.equal(0);
    });

    it("writes the projects config into the secret, where every key of a project gets its limits", () => {
      const ci = generateApiKey("acme", { name: "ci" });
      const dev = generateApiKey("acme", { name: "dev" });
      const value = apiKeySetValue(
        [ci.entry, dev.entry],
        [
          { id: "acme", name: "Acme", concurrency: 5, defaultTimeout: 900, ownerId: "team-a" },
          { id: "empty" },
        ],
      );
      expect(JSON.parse(value).projects).to.deep.equal([
        { id: "acme", name: "Acme", concurrency: 5, defaultTimeout: 900, ownerId: "team-a" },
        { id: "empty" },
      ]);
      const directory = parseApiKeySet(value);
      for (const { key } of [ci, dev]) {
        expect(authenticate(key, directory, DEFAULTS)).to.deep.include({
          concurrency: 5,
          defaultTimeout: 900,
        });
      }
      expect(resolveProject(directory, "empty", DEFAULTS)).to.deep.include({
        concurrency: 25,
        defaultTimeout: 300,
        ownerId: "self-hosted",
      });
    });

    it("keeps a legacy per-key limit for a project without entry (the smallest of its keys applies)", () => {
      const a = generateApiKey("legacy").entry;
      const b = generateApiKey("legacy").entry;
      const value = apiKeySetValue([
        { ...a, concurrency: 7 },
        { ...b, concurrency: 3 },
      ]);
      expect(resolveProject(parseApiKeySet(value), "legacy", DEFAULTS)?.concurrency).to.equal(3);
    });

    it("refuses a project entry with a bad field, naming the entry and the field", () => {
      const cases: [unknown, RegExp][] = [
        [{ id: "a b" }, /^secrets: projects\[0\]\.id: id must be 1-64 letters/],
        [{ concurrency: 5 }, /^secrets: projects\[0\]\.id/],
        [{ id: "p", concurrency: 0 }, /^secrets: projects\[0\]\.concurrency: concurrency must be at least 1/],
        [
          { id: "p", concurrency: 100001 },
          /^secrets: projects\[0\]\.concurrency: concurrency must be at most/,
        ],
        [{ id: "p", concurrency: 2.5 }, /^secrets: projects\[0\]\.concurrency/],
        [{ id: "p", concurrency: "5" }, /^secrets: projects\[0\]\.concurrency/],
        [
          { id: "p", defaultTimeout: 30 },
          /^secrets: projects\[0\]\.defaultTimeout: defaultTimeout must be at least 60/,
        ],
        [{ id: "p", defaultTimeout: 21601 }, /^secrets: projects\[0\]\.defaultTimeout/],
        [{ id: "p", name: "" }, /^secrets: projects\[0\]\.name/],
        [{ id: "p", concurency: 5 }, /^secrets: projects\[0\]\.concurency is not a project field/],
        ["p", /^secrets: projects\[0\] must be an object/],
      ];
      for (const [project, message] of cases) {
        expect(() => apiKeySetValue([], [project as never]), JSON.stringify(project)).to.throw(message);
      }
      expect(() => projectEntries({ id: "p" } as never)).to.throw(/projects must be a list/);
    });

    it("refuses a project that appears twice", () => {
      expect(() => apiKeySetValue([], [{ id: "p" }, { id: "q" }, { id: "p", concurrency: 2 }])).to.throw(
        /^secrets: projects\[2\]\.id: project p appears twice/,
      );
    });

    it("refuses a limit on a key whose project has an entry, saying to move it to the project", () => {
      const { entry } = generateApiKey("acme");
      const other = generateApiKey("other").entry;
      expect(() =>
        apiKeySetValue(
          [
            { ...other, concurrency: 2 },
            { ...entry, concurrency: 4 },
          ],
          [{ id: "acme", concurrency: 5 }],
        ),
      ).to.throw(
        /^secrets: apiKeys\[1\]\.concurrency: project acme has an entry \(projects\[0\]\).*move the limit to projects\[0\]\.concurrency and remove it from the key/,
      );
      // The same key without its limit is fine.
      expect(() => apiKeySetValue([entry], [{ id: "acme", concurrency: 5 }])).to.not.throw();
    });

    it("refuses a bad hash, a duplicate, a bad project and an entry that carries the key itself", () => {
      const { key, entry } = generateApiKey("acme");
      expect(() => apiKeySetValue([{ ...entry, hash: "abc" }])).to.throw(/apiKeys\[0\]\.hash/);
      expect(() => apiKeySetValue([entry, entry])).to.throw(/apiKeys\[1\]\.hash appears twice/);
      expect(() => apiKeySetValue([{ ...entry, projectId: "a b" }])).to.throw(/projectId/);
      expect(() => apiKeySetValue([{ ...entry, key } as never])).to.throw(/never the key/);
      expect(() => apiKeySetValue([{ ...entry, concurrency: 0 }])).to.throw(/concurrency/);
    });
  });

  describe("token key sets", () => {
    it("defaults to one key k1 and makes the last id current", () => {
      expect(tokenKeyPlan()).to.deep.equal({ ids: ["k1"], current: "k1" });
      expect(tokenKeyPlan(["k1", "k2"])).to.deep.equal({ ids: ["k1", "k2"], current: "k2" });
      expect(tokenKeyPlan(["k1", "k2"], "k1").current).to.equal("k1");
    });

    it("refuses an empty list, a bad or duplicate id, and a current id not in the list", () => {
      expect(() => tokenKeyPlan([])).to.throw(/tokenKeyIds/);
      expect(() => tokenKeyPlan(["a/b"])).to.throw(/tokenKeyIds/);
      expect(() => tokenKeyPlan(["k1", "k1"])).to.throw(/duplicate/);
      expect(() => tokenKeyPlan(["k1"], "k2")).to.throw(/currentTokenKeyId/);
    });

    it("turns random bytes into a set the handlers' parser accepts", () => {
      const a = randomBytes(32);
      const b = randomBytes(32);
      const value = tokenKeySetValue("k2", { k1: a.toString("base64"), k2: b.toString("base64") });
      const set = parseTokenKeySet(value);
      expect(set.current).to.equal("k2");
      expect(Buffer.from(set.keys.k1, "base64url").equals(a)).to.equal(true);
      expect(Buffer.from(set.keys.k2, "base64url").equals(b)).to.equal(true);
    });

    it("checks a set given whole from config without echoing key material", () => {
      const good = JSON.stringify(rotateTokenKeySet(undefined, "cfg1"));
      expect(checkTokenKeySet(good)).to.equal(good);
      const short = JSON.stringify({ current: "a", keys: { a: "c2hvcnQ" } });
      expect(() => checkTokenKeySet(short))
        .to.throw(/32 bytes/)
        .with.property("message")
        .that.does.not.include("c2hvcnQ");
      expect(() => checkTokenKeySet(JSON.stringify({ current: "b", keys: JSON.parse(good).keys }))).to.throw(
        /current/,
      );
      expect(() => checkTokenKeySet("{")).to.throw(/not valid JSON/);
    });
  });

  describe("the Secrets component", function () {
    it("refuses bad projects config before making anything", () => {
      const { entry } = generateApiKey("p1");
      expect(
        () => new Secrets("t-bad", { apiKeys: [{ ...entry, concurrency: 2 }], projects: [{ id: "p1" }] }),
      ).to.throw(/apiKeys\[0\]\.concurrency: .*move the limit/);
      expect(() => new Secrets("t-bad2", { apiKeys: [], projects: [{ id: "p1" }, { id: "p1" }] })).to.throw(
        /projects\[1\]\.id: project p1 appears twice/,
      );
    });

    this.timeout(20000);
    const { key, entry } = generateApiKey("p1");
    const given = rotateTokenKeySet(rotateTokenKeySet(undefined, "old"), "new");
    let generated: Secrets;
    let fromConfig: Secrets;

    before(async () => {
      await installMocks();
      generated = new Secrets("t-gen", {
        apiKeys: [entry],
        projects: [{ id: "p1", name: "Project one", concurrency: 3 }],
        tokenKeyIds: ["k1", "k2"],
        currentTokenKeyId: "k1",
        recoveryWindowDays: 0,
      });
      fromConfig = new Secrets("t-cfg", { apiKeys: [], tokenKeySet: pulumi.secret(JSON.stringify(given)) });
      await promiseOf(generated.tokenKeysSecretArn);
      await promiseOf(fromConfig.tokenKeysSecretArn);
      await settle();
    });

    it("generates one 32-byte random key per id and stores the set, marked secret, with the chosen current id", () => {
      expect(
        ofType(T.bytes, "t-gen-token-key-")
          .map((r) => r.name)
          .sort(),
      ).to.deep.equal(["t-gen-token-key-k1", "t-gen-token-key-k2"]);
      for (const bytes of ofType(T.bytes, "t-gen-")) expect(bytes.inputs.length).to.equal(32);
      const version = find(T.secretVersion, "t-gen-token-keys");
      expect(isSecretInput(version.inputs.secretString)).to.equal(true);
      const set = parseTokenKeySet(plain(version.inputs.secretString));
      expect(set.current).to.equal("k1");
      expect(Object.keys(set.keys).sort()).to.deep.equal(["k1", "k2"]);
      expect(Buffer.from(set.keys.k1, "base64url").toString("base64")).to.equal(
        find(T.bytes, "t-gen-token-key-k1").state.base64,
      );
    });

    it("stores the API-key entries (hashes only) in their own secret", async () => {
      const version = find(T.secretVersion, "t-gen-api-keys");
      const value = plain(version.inputs.secretString) as string;
      expect(value).to.not.include(key);
      expect(parseApiKeySet(value).keys.get(entry.hash)?.projectId).to.equal("p1");
      expect(
        resolveProject(parseApiKeySet(value), "p1", { concurrency: 25, defaultTimeout: 300 }),
      ).to.deep.include({ concurrency: 3, name: "Project one" });
      expect(version.inputs.secretId).to.equal(find(T.secret, "t-gen-api-keys").id);
      expect(await promiseOf(generated.apiKeysSecretArn)).to.equal(
        find(T.secret, "t-gen-api-keys").state.arn,
      );
      expect(find(T.secret, "t-gen-api-keys").inputs.recoveryWindowInDays).to.equal(0);
    });

    it("stores a key set from config as given, generating no key", async () => {
      expect(ofType(T.bytes, "t-cfg-")).to.have.length(0);
      const version = find(T.secretVersion, "t-cfg-token-keys");
      expect(isSecretInput(version.inputs.secretString)).to.equal(true);
      expect(JSON.parse(plain(version.inputs.secretString))).to.deep.equal(given);
      expect(await promiseOf(fromConfig.currentTokenKeyId)).to.equal("new");
      expect(find(T.secret, "t-cfg-token-keys").inputs.recoveryWindowInDays).to.equal(7);
    });
  });
});
