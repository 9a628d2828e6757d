/**
 * Compatibility with the official, unmodified Stagehand 4 (`@browserbasehq/stagehand`), whose
 * `browserbase` helper talks to the Browserbase API through `@browserbasehq/sdk`, pointed at the
 * local stack with `baseUrl`.
 *
 * What its dist does (4.4): `browserbase.launch(options)` uploads its own Chrome extension with
 * `extensions.create` unless `extensionId` (or `browserSettings.extensionId`) is given, then calls
 * `sessions.create(options)` with `userMetadata` merged with its keys (`stagehand`,
 * `stagehand_sdk_language`, `stagehand_sdk_version`), requires a non-empty `id` and `connectUrl`,
 * dials `connectUrl` over CDP, and releases with `sessions.update(id, {status: "REQUEST_RELEASE"})`
 * on close or when the connection fails. `browserbase.connect({sessionId})` calls
 * `sessions.retrieve(id)`, parses `region` against Browserbase's four regions and needs a
 * `connectUrl` in the answer. This version never calls `sessions.debug` (the SDK test covers it).
 *
 * Run for real here (no browser, no LLM): launch up to the CDP dial, which fails because nothing
 * listens on the connect host (and Node 20 has no global WebSocket, which Stagehand 4 expects
 * from Node 22), so the create and the release on failure are Stagehand's own calls; the
 * extension upload; and connect through its retrieve (which carries a connectUrl) up to the CDP
 * dial. Needs a real browser, so tested as the same SDK calls with the same parameters Stagehand
 * uses: the release after a successful connection.
 */
import { randomUUID } from "node:crypto";
import Browserbase from "@browserbasehq/sdk";
import { expect } from "chai";
import {
  expectSdkSession,
  rejectionOf,
  startCompatStack,
  startFaultProxy,
  type CompatProject,
  type CompatStack,
  type FaultProxy,
} from "./support";

/** The part of Stagehand's public API these tests use (its types resolve only under ESM resolution). */
interface StagehandBrowser {
  close(): Promise<void>;
}
interface BrowserbaseClientOptions {
  maxRetries?: number;
  timeout?: number;
}
interface StagehandModule {
  browserbase: {
    launch(
      options: { apiKey: string; baseUrl: string; clientOptions?: BrowserbaseClientOptions } & Record<
        string,
        unknown
      >,
    ): Promise<StagehandBrowser>;
    connect(options: {
      apiKey: string;
      baseUrl: string;
      sessionId: string;
      clientOptions?: BrowserbaseClientOptions;
    }): Promise<StagehandBrowser>;
  };
}

/**
 * Stagehand 4 ships as an ES module only. Under `module: commonjs` TypeScript turns `import()`
 * into `require()`, which its package exports refuse, so the import goes through a Function.
 */
const importEsm = new Function("specifier", "return import(specifier)") as <T>(
  specifier: string,
) => Promise<T>;

/** What Stagehand's zod schemas accept from the SDK (BrowserbaseSessionCreate/RetrieveResultSchema). */
const STAGEHAND_REGIONS = ["us-west-2", "us-east-1", "eu-central-1", "ap-southeast-1"];

describe("compat: @browserbasehq/stagehand 4 browserbase helper against the local stack", function () {
  this.timeout(15000);

  let world: CompatStack;
  let stagehand: StagehandModule;
  let proxy: FaultProxy;
  let main: CompatProject;
  let noExtension: CompatProject;

  const sdkFor = (project: CompatProject) => new Browserbase({ apiKey: project.apiKey, baseURL: world.url });
  const calls = () => proxy.seen.map((req) => `${req.method} ${req.url}`);

  before(async () => {
    world = await startCompatStack({ projects: [{}, {}] });
    [main, noExtension] = world.projects;
    stagehand = await importEsm<StagehandModule>("@browserbasehq/stagehand");
  });
  beforeEach(async () => {
    // Between Stagehand and the stack, to see exactly what it sends.
    proxy = await startFaultProxy(world.url, () => "pass");
  });
  afterEach(() => proxy.close());
  after(() => world.stop());

  it("launch creates the session with Stagehand's keys merged into userMetadata, and releases it when the browser is unreachable", async () => {
    const tag = randomUUID();
    const error = await rejectionOf(
      stagehand.browserbase.launch({
        apiKey: main.apiKey,
        baseUrl: proxy.url,
        clientOptions: { maxRetries: 0 },
        extensionId: "stagehand-preloaded",
        timeout: 120,
        userMetadata: { tag, order: "7" },
        browserSettings: { viewport: { width: 1024, height: 768 }, blockAds: true },
      }),
    );
    // The API calls succeeded; only the CDP dial to connectUrl failed.
    expect(error.name).to.not.equal("BrowserbaseSessionError");
    expect(error.message).to.match(/WebSocket/);

    const [create, release] = proxy.seen;
    const created = await sdkFor(main).sessions.list({ q: `user_metadata['tag']:'${tag}'` });
    expect(created).to.have.length(1);
    const id = created[0].id;
    expect(calls()).to.deep.equal(["POST /v1/sessions", `POST /v1/sessions/${id}`]);
    expect(create.headers["x-bb-api-key"]).to.equal(main.apiKey);

    const body = JSON.parse(create.body!);
    expect(body).to.deep.include({
      timeout: 120,
      extensionId: "stagehand-preloaded",
      browserSettings: { viewport: { width: 1024, height: 768 }, blockAds: true },
    });
    expect(body.userMetadata).to.include({
      tag,
      order: "7",
      stagehand: "true",
      stagehand_sdk_language: "typescript",
    });
    expect(body.userMetadata.stagehand_sdk_version).to.match(/^4\./);
    expect(JSON.parse(release.body!)).to.deep.equal({ status: "REQUEST_RELEASE" });

    const session = await sdkFor(main).sessions.retrieve(id);
    expectSdkSession(session, "retrieved");
    expect(session.status).to.equal("COMPLETED");
    expect(session.userMetadata).to.deep.equal(body.userMetadata);
    expect(Date.parse(session.expiresAt) - Date.parse(session.createdAt)).to.be.within(120_000, 120_999);
    // Sessions Stagehand made can be found by its own metadata.
    const stagehandSessions = await sdkFor(main).sessions.list({ q: "user_metadata['stagehand']:'true'" });
    expect(stagehandSessions.map((s) => s.id)).to.include(id);
  });

  it("launch without an extensionId first uploads Stagehand's extension; WallCrawler has no /v1/extensions, so it fails before creating a session", async () => {
    const error = await rejectionOf(
      stagehand.browserbase.launch({
        apiKey: noExtension.apiKey,
        baseUrl: proxy.url,
        userMetadata: { case: "no-extension" },
      }),
    );
    expect(error.message).to.match(/Failed to upload the Stagehand extension to Browserbase after 1 attempt/);
    expect(calls()).to.deep.equal(["POST /v1/extensions"]);
    expect(await sdkFor(noExtension).sessions.list()).to.deep.equal([]);
  });

  it("connect retrieves the running session's connectUrl and gets as far as the CDP dial", async () => {
    const live = await sdkFor(main).sessions.create({ userMetadata: { case: "reconnect" } });
    const error = await rejectionOf(
      stagehand.browserbase.connect({ apiKey: main.apiKey, baseUrl: proxy.url, sessionId: live.id }),
    );
    // The API call succeeded (retrieve carried a connectUrl); only the dial to the closed connect port failed.
    expect(error.name).to.not.equal("BrowserbaseSessionError");
    expect(error.message).to.match(/WebSocket/);
    expect(calls()).to.deep.equal([`GET /v1/sessions/${live.id}`]);
    // A failed connect leaves the session alone.
    expect((await sdkFor(main).sessions.retrieve(live.id)).status).to.equal("RUNNING");
    await sdkFor(main).sessions.update(live.id, { status: "REQUEST_RELEASE" });
  });

  it("connect refuses a session whose region is not one of Browserbase's four", async () => {
    const elsewhere = await startCompatStack({ projects: [{}], env: { WALLCRAWLER_REGION: "eu-west-1" } });
    try {
      const [project] = elsewhere.projects;
      const sdk = new Browserbase({ apiKey: project.apiKey, baseURL: elsewhere.url });
      const live = await sdk.sessions.create();
      expect(live.region).to.equal("eu-west-1");
      const error = await rejectionOf(
        stagehand.browserbase.connect({ apiKey: project.apiKey, baseUrl: elsewhere.url, sessionId: live.id }),
      );
      expect(error.message).to.equal("Failed to retrieve the Browserbase session");
      await sdk.sessions.update(live.id, { status: "REQUEST_RELEASE" });
    } finally {
      await elsewhere.stop();
    }
  });

  it("the calls Stagehand makes around a connected browser succeed through the same SDK with the same parameters", async () => {
    // Stagehand builds its client as new Browserbase({...clientOptions, apiKey, baseURL}).
    const sdk = new Browserbase({ maxRetries: 2, apiKey: main.apiKey, baseURL: world.url });
    const created = await sdk.sessions.create({
      extensionId: "stagehand-preloaded",
      keepAlive: true,
      region: "us-west-2",
      userMetadata: {
        run: "connected",
        stagehand: "true",
        stagehand_sdk_language: "typescript",
        stagehand_sdk_version: "4.4.0",
      },
    });
    // BrowserbaseSessionCreateResultSchema: id and a non-empty connectUrl.
    expect(created.id.trim()).to.not.equal("");
    expect(created.connectUrl.trim()).to.match(/^wss?:\/\//);

    // Reconnect: BrowserbaseSessionRetrieveResultSchema (region, when present, one of four).
    const retrieved = await sdk.sessions.retrieve(created.id);
    expectSdkSession(retrieved, "retrieved");
    expect(retrieved.id).to.equal(created.id);
    expect(STAGEHAND_REGIONS).to.include(retrieved.region);

    // close() after a connected session: release, twice is harmless (Stagehand may retry it).
    await sdk.sessions.update(created.id, { status: "REQUEST_RELEASE" });
    await sdk.sessions.update(created.id, { status: "REQUEST_RELEASE" });
    expect((await sdk.sessions.retrieve(created.id)).status).to.equal("COMPLETED");
  });
});
