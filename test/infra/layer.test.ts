/**
 * The shared-dependencies layer: what it holds and where, that it is built once per lock file, the
 * LayerVersion the program makes, and the create-session function's serialized code answering a
 * real request in a fresh process that finds its npm packages in the layer only (as Lambda does,
 * through NODE_PATH=/opt/nodejs/node_modules), never in the repository's node_modules.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import * as pulumi from "@pulumi/pulumi";
import { expect } from "chai";
import { Redis } from "ioredis";
import { LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME } from "../../infra/functions";
import {
  buildDependencyLayer,
  DependencyLayer,
  LAYER_ENTRIES,
  layerFile,
  layerKey,
  layerPackages,
  packageName,
  type BuiltLayer,
} from "../../infra/layer";
import { generateApiKey } from "../../lib/apikeys";
import { rotateTokenKeySet, verifySessionToken } from "../../lib/tokens";
import { apiEvent } from "../support/fixtures";
import { find, installMocks, promiseOf, recorded, settle, T } from "./mocks";
import { createSessionCode, functionEnv, redisWithAuth } from "./serialized";

const REPO = join(__dirname, "..", "..");
const run = promisify(execFile);

/** Bytes and names of every file under a layer build, for comparing two builds. */
function contentHash(layer: BuiltLayer): string {
  const hash = createHash("sha256");
  for (const file of layer.files) hash.update(file.path).update(readFileSync(join(layer.dir, file.path)));
  return hash.digest("hex");
}

describe("infra/layer", () => {
  describe("where each bundle goes", () => {
    it("keeps a deep specifier's path and gives a bare one index.js, under the package's own folder", () => {
      expect(layerFile("ioredis/built/index.js")).to.deep.equal({
        packageDir: "ioredis",
        main: "built/index.js",
      });
      expect(layerFile("zod")).to.deep.equal({ packageDir: "zod", main: "index.js" });
      expect(layerFile("@aws-lambda-powertools/logger")).to.deep.equal({
        packageDir: "@aws-lambda-powertools/logger",
        main: "index.js",
      });
      expect(packageName("@scope/name/deep/file.js")).to.equal("@scope/name");
    });

    it("lists each package once, and never a client the Lambda runtime ships", () => {
      const packages = layerPackages();
      expect(packages).to.include.members([
        "zod",
        "jose",
        "ioredis",
        "@aws-lambda-powertools/logger",
        "busboy",
      ]);
      expect(new Set(packages).size).to.equal(packages.length);
      expect(packages.some((name) => name.startsWith("@aws-sdk/"))).to.equal(false);
    });

    it("is keyed by the lock file: the same text gives the same key, any change a new one", () => {
      expect(layerKey("lock-a")).to.equal(layerKey("lock-a"));
      expect(layerKey("lock-a")).to.not.equal(layerKey("lock-b"));
      expect(layerKey("lock-a", LAYER_ENTRIES.slice(1))).to.not.equal(layerKey("lock-a"));
    });
  });

  describe("building it", function () {
    this.timeout(120_000);
    let cacheDir: string;
    let layer: BuiltLayer;

    before(async () => {
      cacheDir = mkdtempSync(join(tmpdir(), "wc-layer-cache-"));
      layer = await buildDependencyLayer({ projectDir: REPO, cacheDir });
    });

    after(() => rmSync(cacheDir, { recursive: true, force: true }));

    it("puts one minified file per entry at the path its require names, with a package.json pointing at it", () => {
      expect(layer.cached).to.equal(false);
      const paths = layer.files.map((file) => file.path);
      for (const entry of LAYER_ENTRIES) {
        const { packageDir, main } = layerFile(entry.specifier);
        expect(paths).to.include(`nodejs/node_modules/${packageDir}/${main}`);
        const manifest = JSON.parse(
          readFileSync(join(layer.dir, "nodejs", "node_modules", packageDir, "package.json"), "utf8"),
        );
        expect(manifest).to.include({ name: packageName(entry.specifier), main });
        expect(manifest).to.not.have.property("exports");
      }
      // Nothing else: two files per package.
      expect(layer.files).to.have.length(LAYER_ENTRIES.length * 2);
    });

    it("stays under 1 MB unzipped", () => {
      expect(layer.totalBytes).to.be.below(1_000_000);
    });

    it("builds zod with its English messages only", () => {
      const zod = readFileSync(join(layer.dir, "nodejs", "node_modules", "zod", "index.js"), "utf8");
      expect(zod).to.include("Invalid input");
      // German and French messages of the locales that classic zod re-exports.
      expect(zod).to.not.include("Ungültige Eingabe");
      expect(zod).to.not.include("Entrée invalide");
    });

    it("is taken from the cache for the same lock file, with identical bytes", async () => {
      const again = await buildDependencyLayer({ projectDir: REPO, cacheDir });
      expect(again.cached).to.equal(true);
      expect(again.dir).to.equal(layer.dir);
      expect(contentHash(again)).to.equal(contentHash(layer));
    });

    it("builds byte-identical files from scratch for the same lock file", async () => {
      const other = mkdtempSync(join(tmpdir(), "wc-layer-cache-"));
      try {
        const fresh = await buildDependencyLayer({ projectDir: REPO, cacheDir: other });
        expect(fresh.cached).to.equal(false);
        expect(contentHash(fresh)).to.equal(contentHash(layer));
      } finally {
        rmSync(other, { recursive: true, force: true });
      }
    });
  });

  describe("the DependencyLayer component", function () {
    this.timeout(120_000);

    before(async () => {
      await installMocks();
      const layer = new DependencyLayer("t-layer", { projectDir: REPO });
      await promiseOf(layer.arn);
      await settle();
    });

    it("is one layer version for the functions' runtime and architecture, with the build as its code", async () => {
      const version = find(T.layer, "t-layer-layer");
      expect(version.inputs.compatibleRuntimes).to.deep.equal([LAMBDA_RUNTIME]);
      expect(version.inputs.compatibleArchitectures).to.deep.equal([LAMBDA_ARCHITECTURE]);
      const code = version.inputs.code as pulumi.asset.FileArchive;
      expect(pulumi.asset.FileArchive.isInstance(code)).to.equal(true);
      const dir = await code.path;
      expect(readFileSync(join(dir, "nodejs", "node_modules", "zod", "package.json"), "utf8")).to.include(
        '"main"',
      );
    });

    it("refuses a project folder without a lock file, naming the argument", () => {
      expect(() => new DependencyLayer("t-layer-bad", { projectDir: tmpdir() })).to.throw(/projectDir/);
    });
  });

  describe("the program's create-session function, through the layer", function () {
    this.timeout(240_000); // loading the program waits for settle() (see mocks.ts)
    const { key, entry } = generateApiKey("layered");
    const tokenKeys = rotateTokenKeySet(undefined, "k1");
    const authToken = "layer-test-auth-token-0123456789abcdef";
    let work: string;
    let inRepo: string;
    let layerModules: string;
    let runtimeModules: string;
    let admin: Redis;

    /** The env of a function: endpoints and `file:` secret refs (as the local stack uses). */
    let env: Record<string, string>;

    /**
     * Runs the serialized code in a fresh `node`: it requires `<dir>/__index.js` (which runs the
     * factory, as Lambda's init does), answers each event in turn and reports the responses and
     * every file it loaded.
     */
    async function invoke(
      dir: string,
      nodePath: string[],
      events: unknown[],
    ): Promise<{ responses: { statusCode: number; body: string }[]; loaded: string[] }> {
      writeFileSync(join(dir, "events.json"), JSON.stringify(events));
      const { stdout } = await run(process.execPath, [join(dir, "invoke.js")], {
        cwd: dir,
        env: { PATH: process.env.PATH ?? "", NODE_PATH: nodePath.join(":"), ...env },
        timeout: 60_000,
      });
      return JSON.parse(stdout.trim().split("\n").pop()!);
    }

    const driver = `
const events = require("./events.json");
const { handler } = require("./__index.js");
(async () => {
  const responses = [];
  for (const event of events) {
    const r = await handler(event, { awsRequestId: "layer-" + responses.length });
    responses.push({ statusCode: r.statusCode, body: r.body });
  }
  process.stdout.write("\\n" + JSON.stringify({ responses, loaded: Object.keys(require.cache) }) + "\\n");
  process.exit(0);
})().catch((error) => { console.error(error); process.exit(1); });
`;

    before(async () => {
      const code = await createSessionCode();
      const layerDir = await (find(T.layer, "deps-layer").inputs.code as pulumi.asset.FileArchive).path;
      layerModules = join(layerDir, "nodejs", "node_modules");

      const redis = await redisWithAuth(authToken);
      admin = redis.admin;

      // Outside the repository, so no parent folder's node_modules can stand in for the layer.
      work = mkdtempSync(join(tmpdir(), "wc-layered-fn-"));
      writeFileSync(join(work, "__index.js"), code);
      writeFileSync(join(work, "invoke.js"), driver);
      // The runtime's own AWS SDK (Lambda's /var/runtime/node_modules): only the clients the
      // package leaves out for the runtime to provide.
      runtimeModules = join(work, "runtime", "node_modules");
      for (const sdk of [
        "@aws-sdk/client-secrets-manager",
        "@aws-sdk/client-s3",
        "@aws-sdk/s3-request-presigner",
      ]) {
        mkdirSync(dirname(join(runtimeModules, sdk)), { recursive: true });
        symlinkSync(join(REPO, "node_modules", sdk), join(runtimeModules, sdk), "dir");
      }
      // The same code beside the repository's node_modules: the reference for the 400 texts.
      mkdirSync(join(REPO, "node_modules", ".cache"), { recursive: true });
      inRepo = mkdtempSync(join(REPO, "node_modules", ".cache", "wallcrawler-unlayered-"));
      writeFileSync(join(inRepo, "__index.js"), code);
      writeFileSync(join(inRepo, "invoke.js"), driver);

      env = {
        ...functionEnv(work, {
          redisUrl: redis.url,
          entry,
          project: { id: "layered", concurrency: 5 },
          tokenKeys,
          authToken,
        }),
        POWERTOOLS_METRICS_DISABLED: "true",
        AWS_REGION: "us-west-2",
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
      };
    });

    after(() => {
      admin?.disconnect();
      if (work) rmSync(work, { recursive: true, force: true });
      if (inRepo) rmSync(inRepo, { recursive: true, force: true });
    });

    const create = (body: unknown) =>
      apiEvent({ method: "POST", path: "/v1/sessions", headers: { "x-bb-api-key": key }, body });
    const badBodies = [
      { timeout: 5 },
      { timeout: "long" },
      { browserSettings: { viewport: { width: "wide" } } },
      { userMetadata: "not an object" },
      { keepAlive: 1, region: 7 },
    ];

    it("answers POST /v1/sessions with 201, loading its npm packages from the layer only", async () => {
      const { responses, loaded } = await invoke(
        work,
        [layerModules, runtimeModules],
        [create({ timeout: 120, userMetadata: { via: "layer" } })],
      );
      expect(responses[0].statusCode, responses[0].body).to.equal(201);
      const session = JSON.parse(responses[0].body);
      expect(session).to.include({ projectId: "layered", status: "RUNNING", region: "us-west-2" });
      const claims = await verifySessionToken(session.signingKey, tokenKeys, {
        issuer: "wallcrawler-api",
        audience: "wallcrawler-proxy",
        sessionId: session.id,
      });
      expect(claims).to.include({ sessionId: session.id, projectId: "layered" });
      expect(await admin.exists(`wc:{layered}:session:${session.id}`)).to.equal(1);

      // The layered packages came from the layer's bundles, not from the repository.
      for (const specifier of ["zod", "jose", "ioredis/built/index.js", "@aws-lambda-powertools/logger"]) {
        const { packageDir, main } = layerFile(specifier);
        expect(loaded, specifier).to.include(join(layerModules, packageDir, main));
      }
      const repoModules = join(REPO, "node_modules") + "/";
      const fromRepo = loaded.filter((file) => file.startsWith(repoModules));
      // Only the runtime's SDK client (with its own dependency tree) comes from elsewhere.
      expect(fromRepo.length).to.be.greaterThan(0);
      for (const file of fromRepo) {
        expect(layerPackages(), file).to.not.include(packageName(file.slice(repoModules.length)));
      }
    });

    it("answers GET /v1/sessions/{id} from the serialized get-session function, its request bucket on", async () => {
      // The routes other than create keep a request's pending token on the event: module-level
      // state (a WeakMap did) would not survive serialization, and these routes answered 500.
      const made = await invoke(work, [layerModules, runtimeModules], [create({ timeout: 120 })]);
      const session = JSON.parse(made.responses[0].body);
      const fn = recorded.find((r) => r.type === T.lambda && r.name === "api-fn-get-session");
      const getDir = mkdtempSync(join(tmpdir(), "wc-layered-get-"));
      try {
        writeFileSync(
          join(getDir, "__index.js"),
          (await (
            await fn!.inputs.code.assets
          )["__index.js"].text) as string,
        );
        writeFileSync(join(getDir, "invoke.js"), driver);
        const event = apiEvent({
          method: "GET",
          path: `/v1/sessions/${session.id}`,
          routePath: "/v1/sessions/{id}",
          pathParameters: { id: session.id },
          headers: { "x-bb-api-key": key },
        });
        const { responses } = await invoke(getDir, [layerModules, runtimeModules], [event, event]);
        for (const res of responses) {
          expect(res.statusCode, res.body).to.equal(200);
          expect(JSON.parse(res.body)).to.include({ id: session.id, status: "RUNNING" });
        }
        // The bucket was asked: its key holds what the two requests took.
        expect(await admin.exists("wc:{layered}:rate:other")).to.equal(1);
      } finally {
        rmSync(getDir, { recursive: true, force: true });
      }
    });

    it("gives the same 400 messages as the same code on the repository's node_modules", async () => {
      const events = badBodies.map(create);
      const layered = await invoke(work, [layerModules, runtimeModules], events);
      const unlayered = await invoke(inRepo, [], events);
      expect(layered.responses.map((r) => r.statusCode)).to.deep.equal(badBodies.map(() => 400));
      expect(layered.responses).to.deep.equal(unlayered.responses);
      expect(JSON.parse(layered.responses[0].body).message).to.match(/timeout/);
      // The unlayered run did load the repository's zod: the comparison is between two builds.
      expect(unlayered.loaded.some((f) => f.includes(`${join("node_modules", "zod")}/`))).to.equal(true);
    });
  });
});
