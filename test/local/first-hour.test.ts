import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { createMemoryLogger } from "../../lib/logger";
import { runKeys } from "../../local/keys";
import {
  ensureSecretsFile,
  mintFirstKey,
  readSecrets,
  secretsPath,
  SecretsFileError,
} from "../../local/secrets-file";
import { startLocalStack } from "../../local/stack";
import { sharedRedis } from "../support/redis";

describe("the first hour: the secrets file and the keys CLI", () => {
  let home: string;
  let file: string;
  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), "wc-first-hour-"));
    file = secretsPath(home);
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  const problemWith = (contents: string): string => {
    writeFileSync(file, contents);
    try {
      ensureSecretsFile(file);
    } catch (error) {
      expect(error).to.be.instanceOf(SecretsFileError);
      return (error as Error).message;
    }
    throw new Error("the broken file was accepted");
  };

  it("names the file, what is wrong and the fix for a truncated, empty, incomplete or malformed secrets file, quoting none of it", () => {
    ensureSecretsFile(file);
    mintFirstKey(file);
    const good = readFileSync(file, "utf8");
    const tokenKey = JSON.parse(good).tokenKeys.keys[JSON.parse(good).tokenKeys.current] as string;
    const cases: [string, RegExp][] = [
      [
        good.slice(0, 100),
        /is not valid JSON \(it breaks at character \d+ of 100\), perhaps cut short\. Restore it/,
      ],
      ["", /the file is empty/],
      [JSON.stringify({ apiKeys: { keys: [] } }), /"tokenKeys" is missing/],
      [
        JSON.stringify({
          ...JSON.parse(good),
          apiKeys: { keys: [{ hash: "sha256:nothex", projectId: "local" }] },
        }),
        /"apiKeys" is not a valid key list/,
      ],
    ];
    for (const [contents, expected] of cases) {
      const message = problemWith(contents);
      expect(message, contents.slice(0, 40)).to.include(file);
      expect(message).to.match(expected);
      expect(message).to.match(/delete it and run npm start to make a new one/);
      expect(message).to.not.include(tokenKey.slice(0, 12));
    }
  });

  it("mints the first key only when the file has none, so nothing ever mints a key nobody sees", () => {
    ensureSecretsFile(file);
    expect(readSecrets(file).apiKeys.keys).to.deep.equal([]);
    // A list before the first start adds nothing.
    expect(runKeys(["list"], home).out).to.deep.equal(["no keys yet"]);
    expect(readSecrets(file).apiKeys.keys).to.deep.equal([]);
    const first = mintFirstKey(file);
    expect(first?.apiKey).to.match(/^wc_/);
    expect(mintFirstKey(file)).to.equal(undefined);
  });

  it("a start that fails (its port is taken) mints no key; the next start mints and shows one", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", () => resolve()));
    const port = (blocker.address() as AddressInfo).port;
    const options = {
      home,
      redisUrl: (await sharedRedis()).url,
      logger: createMemoryLogger(),
      connect: false,
    };
    try {
      const failed = await startLocalStack({ ...options, port }).then(
        () => expect.fail("the start succeeded on a taken port"),
        (error: Error) => error,
      );
      expect(failed).to.be.instanceOf(Error);
      expect(readSecrets(file).apiKeys.keys).to.deep.equal([]);
    } finally {
      blocker.close();
    }
    const stack = await startLocalStack({ ...options, port: 0 });
    try {
      expect(stack.firstApiKey).to.match(/^wc_/);
      // The key works at once (the cached key list was refreshed).
      const res = await fetch(`${stack.url}/v1/sessions`, {
        headers: { "x-bb-api-key": stack.firstApiKey! },
      });
      expect(res.status).to.equal(200);
    } finally {
      await stack.stop();
    }
  });

  it("keys CLI: --help, list --project with creation dates, revoke, and rotate-token-key --print-entry refused without a change", () => {
    for (const help of [["--help"], ["-h"], ["create", "--help"]]) {
      const result = runKeys(help, home);
      expect(result.status, help.join(" ")).to.equal(0);
      expect(result.out.join("\n")).to.match(/^usage: npm run keys/);
    }
    expect(runKeys(["list"], home).err.join("\n")).to.match(/run npm start once to make it/);
    ensureSecretsFile(file);
    const a = runKeys(["create", "--project", "alpha", "--name", "ci"], home);
    runKeys(["create", "--project", "beta"], home);
    expect(a.status).to.equal(0);
    const listed = runKeys(["list", "--project", "alpha"], home).out;
    expect(listed).to.have.length(1);
    expect(listed[0]).to.match(/project=alpha .*created=\d{4}-\d{2}-\d{2}T/);
    const hash = listed[0].split(" ")[0];

    const before = readFileSync(file, "utf8");
    const rotate = runKeys(["rotate-token-key", "--print-entry"], home);
    expect(rotate.status).to.equal(2);
    expect(rotate.err.join("\n")).to.match(/tokenKeyIds config .*nothing was changed/);
    expect(readFileSync(file, "utf8")).to.equal(before);

    expect(runKeys(["revoke", "--hash", hash], home).status).to.equal(0);
    expect(runKeys(["list", "--project", "alpha"], home).out).to.deep.equal(["no keys for project alpha"]);
    expect(runKeys(["revoke", "--hash", hash], home).status).to.equal(1);
  });

  it("keys CLI: --print-entry gives the stack-config commands, not advice to edit the secret", () => {
    const result = runKeys(["create", "--project", "acme", "--concurrency", "5", "--print-entry"], home);
    const text = result.out.join("\n");
    expect(text).to.match(/pulumi config set --path 'apiKeys\[N\]\.hash' sha256:[0-9a-f]{64}/);
    expect(text).to.include("pulumi config set --path 'apiKeys[N].projectId' acme");
    // The limit is the project's: it goes on the project's entry, not on the key.
    expect(text).to.include("pulumi config set --path 'projects[M].id' acme");
    expect(text).to.include("pulumi config set --path 'projects[M].concurrency' 5");
    expect(text).to.not.include("apiKeys[N].concurrency");
    expect(text).to.not.match(/API-key secret \(or/);
  });
});
