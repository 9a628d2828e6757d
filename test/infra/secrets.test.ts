import { randomBytes } from "node:crypto";
import { expect } from "chai";
import * as pulumi from "@pulumi/pulumi";
import { generateApiKey, parseApiKeySet } from "../../lib/apikeys";
import { parseTokenKeySet, rotateTokenKeySet } from "../../lib/tokens";
import {
  apiKeySetValue,
  checkTokenKeySet,
  Secrets,
  tokenKeyPlan,
  tokenKeySetValue,
} from "../../infra/secrets";
import { find, installMocks, isSecretInput, ofType, plain, promiseOf, settle, T } from "./mocks";

describe("infra/secrets", () => {
  describe("apiKeySetValue", () => {
    it("writes entries the handlers' parser accepts, hashes only", () => {
      const { key, entry } = generateApiKey("acme", { concurrency: 5, name: "ci" });
      const value = apiKeySetValue([entry]);
      expect(value).to.not.include(key);
      const index = parseApiKeySet(value);
      expect(index.get(entry.hash)).to.deep.include({ projectId: "acme", concurrency: 5, name: "ci" });
      expect(parseApiKeySet(apiKeySetValue([])).size).to.equal(0);
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
    this.timeout(20000);
    const { key, entry } = generateApiKey("p1");
    const given = rotateTokenKeySet(rotateTokenKeySet(undefined, "old"), "new");
    let generated: Secrets;
    let fromConfig: Secrets;

    before(async () => {
      await installMocks();
      generated = new Secrets("t-gen", {
        apiKeys: [entry],
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
      expect(parseApiKeySet(value).get(entry.hash)?.projectId).to.equal("p1");
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
