import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import fc from "fast-check";
import {
  authenticate,
  generateApiKey,
  listProjects,
  parseApiKeySet,
  type ApiKeyEntry,
  type ApiKeySet,
  type ProjectEntry,
} from "../../lib/apikeys";
import { runKeys, type KeysResult } from "../../local/keys";
import {
  ensureSecretsFile,
  migrateLegacyLimits,
  readSecrets,
  secretsPath,
  setProject,
  writeSecrets,
} from "../../local/secrets-file";

const DEFAULTS = { concurrency: 25, defaultTimeout: 300 };
/** The environment the CLI reads its defaults from: none set, so the handlers' own defaults. */
const ENV = {};

/** The API key a successful local `create` printed (the line after the first). */
function keyOf(result: KeysResult): string {
  expect(result.status, result.err.join("\n")).to.equal(0);
  const key = result.out.find((line) => /^wc_/.test(line));
  expect(key, result.out.join("\n")).to.be.a("string");
  return key!;
}

describe("the keys CLI: projects and their limits", () => {
  let home: string;
  let file: string;
  const run = (...argv: string[]) => runKeys(argv, home, ENV);
  /** What the handlers make of the local file: the limit a key gets, and every project. */
  const limitOf = (key: string) =>
    authenticate(key, parseApiKeySet(JSON.stringify(readSecrets(file).apiKeys)), DEFAULTS).concurrency;
  const projectsNow = () => listProjects(parseApiKeySet(JSON.stringify(readSecrets(file).apiKeys)), DEFAULTS);
  /** Writes key entries (legacy ones may carry a limit) and project entries straight into the file. */
  const seed = (keys: ApiKeyEntry[], projects?: ProjectEntry[]) => {
    const secrets = readSecrets(file);
    secrets.apiKeys.keys.push(...keys);
    if (projects) secrets.apiKeys.projects = projects;
    writeSecrets(file, secrets);
  };
  const legacyKey = (projectId: string, concurrency?: number) => {
    const made = generateApiKey(projectId, { now: new Date("2024-01-01T00:00:00.000Z") });
    return { key: made.key, entry: concurrency === undefined ? made.entry : { ...made.entry, concurrency } };
  };

  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), "wc-keys-"));
    file = secretsPath(home);
    ensureSecretsFile(file);
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  describe("create", () => {
    it("creates the project when it has none, with the default limit, and stores only the key's hash", () => {
      const result = run("create", "--project", "acme", "--name", "ci");
      const key = keyOf(result);
      const secrets = readSecrets(file);
      expect(secrets.apiKeys.projects).to.have.length(1);
      expect(secrets.apiKeys.projects![0]).to.include({ id: "acme" });
      expect(secrets.apiKeys.projects![0].concurrency).to.equal(undefined);
      expect(secrets.apiKeys.keys.map((entry) => [entry.projectId, entry.name])).to.deep.equal([
        ["acme", "ci"],
      ]);
      expect(JSON.stringify(secrets)).to.not.include(key.slice(3));
      expect(result.out.join("\n")).to.match(/Project acme created: limit 25 live sessions \(the default\)/);
      expect(limitOf(key)).to.equal(25);
    });

    it("--concurrency sets the project's limit, and says it is the project's, shared by all its keys", () => {
      const result = run("create", "--project", "acme", "--concurrency", "5");
      const key = keyOf(result);
      expect(readSecrets(file).apiKeys.projects).to.deep.include.members([]);
      expect(readSecrets(file).apiKeys.projects![0].concurrency).to.equal(5);
      expect(readSecrets(file).apiKeys.keys[0]).to.not.have.property("concurrency");
      expect(result.out.join("\n")).to.match(
        /limit 5 live sessions.*The limit is the project's, shared by all its keys/,
      );
      expect(limitOf(key)).to.equal(5);
    });

    it("a second key without --concurrency keeps the project's limit (it used to get the default 25)", () => {
      const first = keyOf(run("create", "--project", "acme", "--concurrency", "5"));
      const second = run("create", "--project", "acme", "--name", "second");
      expect(limitOf(keyOf(second))).to.equal(5);
      expect(limitOf(first)).to.equal(5);
      expect(readSecrets(file).apiKeys.projects![0].concurrency).to.equal(5);
      expect(second.out.join("\n")).to.match(/Project acme unchanged: limit 5 live sessions/);
      expect(second.out.join("\n")).to.match(/keys \(2 now\)/);
    });

    it("--concurrency on a later key changes the limit of every key of the project", () => {
      const first = keyOf(run("create", "--project", "acme", "--concurrency", "5"));
      const other = keyOf(run("create", "--project", "other", "--concurrency", "2"));
      const result = run("create", "--project", "acme", "--concurrency", "8", "--default-timeout", "900");
      const second = keyOf(result);
      expect(result.out.join("\n")).to.match(
        /limit 8 live sessions \(was 5\), default timeout 900 s \(was 300\)/,
      );
      expect(limitOf(first)).to.equal(8);
      expect(limitOf(second)).to.equal(8);
      expect(limitOf(other)).to.equal(2);
      const principal = authenticate(
        first,
        parseApiKeySet(JSON.stringify(readSecrets(file).apiKeys)),
        DEFAULTS,
      );
      expect(principal.defaultTimeout).to.equal(900);
    });

    it("a key for a project known only from legacy keys keeps the smallest limit they carried", () => {
      const a = legacyKey("legacy", 7);
      const b = legacyKey("legacy", 3);
      seed([a.entry, b.entry]);
      const added = keyOf(run("create", "--project", "legacy"));
      expect([limitOf(a.key), limitOf(b.key), limitOf(added)]).to.deep.equal([3, 3, 3]);
      const secrets = readSecrets(file);
      expect(secrets.apiKeys.projects).to.deep.equal([
        {
          id: "legacy",
          concurrency: 3,
          createdAt: "2024-01-01T00:00:00.000Z",
          updatedAt: secrets.apiKeys.projects![0].updatedAt,
        },
      ]);
      expect(secrets.apiKeys.keys.filter((entry) => entry.concurrency !== undefined)).to.deep.equal([]);
    });

    it("--print-entry prints the key entry without a limit, and the project's entry only when a limit is given", () => {
      const withLimit = run(
        "create",
        "--project",
        "acme",
        "--concurrency",
        "5",
        "--default-timeout",
        "600",
        "--name",
        "Bob's key",
        "--print-entry",
      );
      expect(withLimit.status).to.equal(0);
      const text = withLimit.out.join("\n");
      expect(text).to.match(/^API key \(shown once, store it now\): wc_/);
      expect(text).to.include("pulumi config set --path 'apiKeys[N].projectId' acme");
      expect(text).to.include(`pulumi config set --path 'apiKeys[N].name' 'Bob'\\''s key'`);
      expect(text).to.not.match(/apiKeys\[N\]\.concurrency/);
      expect(text).to.match(/The limit is the project's, shared by all its keys/);
      expect(text).to.include("pulumi config set --path 'projects[M].id' acme");
      expect(text).to.include("pulumi config set --path 'projects[M].concurrency' 5");
      expect(text).to.include("pulumi config set --path 'projects[M].defaultTimeout' 600");
      const entry = JSON.parse(text.split("The entry: ")[1]) as ApiKeyEntry;
      expect(entry).to.not.have.property("concurrency");
      // Nothing local was touched.
      expect(readSecrets(file).apiKeys).to.deep.equal({ keys: [] });

      const without = run("create", "--project", "acme", "--print-entry").out.join("\n");
      expect(without).to.not.include("projects[M]");
      expect(without).to.match(/shares project acme's limit/);
    });

    it("--print-entry sets a project id that looks like a number as text", () => {
      const text = run("create", "--project", "123", "--print-entry", "--concurrency", "4").out.join("\n");
      expect(text).to.include("pulumi config set --path 'apiKeys[N].projectId' --type string 123");
      expect(text).to.include("pulumi config set --path 'projects[M].id' --type string 123");
      expect(text).to.include("pulumi config set --path 'projects[M].concurrency' 4");
    });
  });

  describe("bad values", () => {
    const cases: [string[], RegExp][] = [
      [
        ["create", "--project", "p", "--concurrency", "0"],
        /--concurrency must be a whole number from 1 to 100000/,
      ],
      [["create", "--project", "p", "--concurrency", "100001"], /--concurrency must be/],
      [["create", "--project", "p", "--concurrency", "1.5"], /--concurrency must be/],
      [["create", "--project", "p", "--concurrency", "abc"], /--concurrency must be/],
      [["create", "--project", "p", "--concurrency", "1e3"], /--concurrency must be/],
      [
        ["create", "--project", "p", "--default-timeout", "59"],
        /--default-timeout must be a whole number from 60 to 21600 seconds/,
      ],
      [["create", "--project", "p", "--default-timeout", "21601"], /--default-timeout must be/],
      [["create", "--project", "p", "--default-timeout", "90.5"], /--default-timeout must be/],
      [["create", "--project", "a b"], /--project must be 1-64 letters, digits, _ or -/],
      [["create", "--project=-lead"], /--project must be/],
      [["create", "--project", "x".repeat(65), "--print-entry"], /--project must be/],
      [["create"], /--project is required/],
      [["create", "--project", "p", "--owner", "me"], /--owner does not apply to create/],
      [["projects", "create", "--project", "p", "--concurrency=-1"], /--concurrency must be/],
      [["projects", "set", "--project", "p b", "--concurrency", "2"], /--project must be/],
      [["projects", "set", "--project", "p", "--default-timeout", "30"], /--default-timeout must be/],
      [["projects", "set", "--project", "p"], /projects set needs at least one of --concurrency/],
      [["projects", "create", "--project", "p", "--name", ""], /--name must be 1 to 200 characters/],
      [["projects", "frob"], /unknown command projects frob/],
      [["projects"], /projects needs create, set or list/],
      [["migrate", "--print-entry"], /--print-entry does not apply to migrate.*nothing was changed/],
    ];
    for (const [argv, message] of cases) {
      it(`exits 2 naming the flag, changing nothing: ${argv.join(" ").slice(0, 70)}`, () => {
        seed([legacyKey("p", 4).entry], [{ id: "p", concurrency: 9 }]);
        const before = readFileSync(file, "utf8");
        const result = run(...argv);
        expect(result.status, result.out.join("\n")).to.equal(2);
        expect(result.err[0]).to.match(message);
        expect(result.out).to.deep.equal([]);
        expect(readFileSync(file, "utf8")).to.equal(before);
      });
    }
  });

  describe("projects create, set and list", () => {
    it("projects create makes a project with the given fields; a second create of it is refused", () => {
      const result = run(
        "projects",
        "create",
        "--project",
        "acme",
        "--name",
        "Acme Inc",
        "--owner",
        "team-a",
        "--concurrency",
        "12",
        "--default-timeout",
        "1800",
      );
      expect(result.status, result.err.join("\n")).to.equal(0);
      expect(result.out[0]).to.match(
        /^Project acme created: limit 12 live sessions, default timeout 1800 s\./,
      );
      expect(projectsNow()).to.deep.equal([
        {
          id: "acme",
          name: "Acme Inc",
          concurrency: 12,
          defaultTimeout: 1800,
          ownerId: "team-a",
          createdAt: readSecrets(file).apiKeys.projects![0].createdAt,
          updatedAt: readSecrets(file).apiKeys.projects![0].updatedAt,
        },
      ]);
      const before = readFileSync(file, "utf8");
      const again = run("projects", "create", "--project", "acme");
      expect(again.status).to.equal(1);
      expect(again.err[0]).to.match(
        /project acme already exists: change it with npm run keys -- projects set/,
      );
      expect(readFileSync(file, "utf8")).to.equal(before);
      // `project` reads as `projects`.
      expect(run("project", "create", "--project", "beta").status).to.equal(0);
    });

    it("projects set changes only the given fields, for every key of the project, and stamps updatedAt", async () => {
      const key = keyOf(run("create", "--project", "acme", "--concurrency", "5"));
      const created = readSecrets(file).apiKeys.projects![0];
      await new Promise((resolve) => setTimeout(resolve, 5));
      const result = run("projects", "set", "--project", "acme", "--concurrency", "7", "--name", "Acme");
      expect(result.status, result.err.join("\n")).to.equal(0);
      expect(result.out[0]).to.match(/^Project acme changed: limit 7 live sessions \(was 5\)/);
      const changed = readSecrets(file).apiKeys.projects![0];
      expect(changed).to.include({ id: "acme", name: "Acme", concurrency: 7, createdAt: created.createdAt });
      expect(changed.defaultTimeout).to.equal(undefined);
      expect(changed.updatedAt! > created.updatedAt!).to.equal(true);
      expect(limitOf(key)).to.equal(7);

      expect(run("projects", "set", "--project", "acme", "--default-timeout", "120").status).to.equal(0);
      expect(readSecrets(file).apiKeys.projects![0]).to.include({ concurrency: 7, defaultTimeout: 120 });
    });

    it("projects set --create-rate/--request-burst set the project's token buckets that authentication hands the handlers", () => {
      const key = keyOf(run("create", "--project", "acme"));
      const rates = () =>
        authenticate(key, parseApiKeySet(JSON.stringify(readSecrets(file).apiKeys)), {
          ...DEFAULTS,
          rateLimits: { create: { perSecond: 10, burst: 30 }, requests: { perSecond: 50, burst: 100 } },
        }).rateLimits;
      expect(rates()).to.deep.equal({
        create: { perSecond: 10, burst: 30 },
        requests: { perSecond: 50, burst: 100 },
      });
      const result = run(
        "projects",
        "set",
        "--project",
        "acme",
        "--create-rate",
        "2",
        "--request-burst",
        "7",
      );
      expect(result.status, result.err.join("\n")).to.equal(0);
      expect(rates()).to.deep.equal({
        create: { perSecond: 2, burst: 30 },
        requests: { perSecond: 50, burst: 7 },
      });
      const printed = run("projects", "set", "--project", "acme", "--create-burst", "4", "--print-entry");
      expect(printed.out.join("\n")).to.include("pulumi config set --path 'projects[M].createBurst' 4");
      const bad = run("projects", "set", "--project", "acme", "--create-burst", "0");
      expect(bad.status).to.equal(2);
      expect(bad.err.join("\n")).to.match(/--create-burst must be a whole number from 1 to 100000/);
      expect(run("create", "--project", "acme", "--create-rate", "3").err.join("\n")).to.match(
        /--create-rate does not apply to create/,
      );
    });

    it("projects set refuses a project that does not exist, and adopts a legacy one keeping its other limits", () => {
      const missing = run("projects", "set", "--project", "ghost", "--concurrency", "3");
      expect(missing.status).to.equal(1);
      expect(missing.err[0]).to.match(
        /there is no project ghost: make it with npm run keys -- projects create/,
      );

      const legacy = legacyKey("legacy", 6);
      seed([legacy.entry]);
      const result = run("projects", "set", "--project", "legacy", "--default-timeout", "600");
      expect(result.status, result.err.join("\n")).to.equal(0);
      expect(limitOf(legacy.key)).to.equal(6);
      expect(readSecrets(file).apiKeys.projects).to.have.length(1);
      expect(readSecrets(file).apiKeys.projects![0]).to.include({
        id: "legacy",
        concurrency: 6,
        defaultTimeout: 600,
      });
      expect(readSecrets(file).apiKeys.keys[0]).to.not.have.property("concurrency");
    });

    it("projects set --print-entry prints the stack's projects config commands and writes nothing", () => {
      const before = readFileSync(file, "utf8");
      const result = run(
        "projects",
        "set",
        "--project",
        "acme",
        "--concurrency",
        "9",
        "--owner",
        "true",
        "--print-entry",
      );
      expect(result.status).to.equal(0);
      expect(result.out.join("\n")).to.include("pulumi config set --path 'projects[M].id' acme");
      expect(result.out.join("\n")).to.include("pulumi config set --path 'projects[M].concurrency' 9");
      expect(result.out.join("\n")).to.include(
        "pulumi config set --path 'projects[M].ownerId' --type string true",
      );
      expect(readFileSync(file, "utf8")).to.equal(before);
    });

    it("projects list shows id, name, limit, default timeout, owner and key count, marking defaults and legacy projects", () => {
      run("projects", "create", "--project", "acme", "--name", "Acme", "--concurrency", "5");
      run("create", "--project", "acme");
      run("create", "--project", "acme");
      seed([legacyKey("legacy", 4).entry, legacyKey("legacy", 9).entry, legacyKey("plain").entry], undefined);
      const lines = runKeys(["projects", "list"], home, { DEFAULT_CONCURRENCY: "30" }).out;
      expect(lines).to.have.length(3);
      expect(lines[0]).to.equal(
        'acme  name="Acme"  concurrency=5  defaultTimeout=300 (default)  ownerId=self-hosted  keys=2',
      );
      expect(lines[1]).to.match(
        /^legacy {2}name="legacy" {2}concurrency=4 {2}defaultTimeout=300 \(default\) {2}ownerId=self-hosted {2}keys=2 {2}\(legacy: no project entry, limit from its keys; npm run keys -- migrate\)$/,
      );
      expect(lines[2]).to.match(
        /^plain .*concurrency=30 \(default\) .*keys=1 {2}\(no project entry: defaults\)$/,
      );
      expect(run("projects", "list", "--project", "acme").out).to.have.length(1);
      expect(run("projects", "list", "--project", "nope").out).to.deep.equal(["no project nope"]);
    });

    it("projects list says so when there are none, and names a bad default setting", () => {
      expect(run("projects", "list").out).to.deep.equal(["no projects yet"]);
      const bad = runKeys(["projects", "list"], home, { DEFAULT_CONCURRENCY: "lots" });
      expect(bad.status).to.equal(1);
      expect(bad.err[0]).to.match(/DEFAULT_CONCURRENCY must be an integer/);
    });

    it("list shows each key with its project's limit, and flags a legacy limit on a key", () => {
      keyOf(run("create", "--project", "acme", "--concurrency", "5"));
      keyOf(run("create", "--project", "acme"));
      seed([legacyKey("legacy", 4).entry]);
      const lines = run("list").out;
      expect(
        lines.filter((line) => / project=acme {2}concurrency=5 \(project's\) {2}created=/.test(line)),
      ).to.have.length(2);
      expect(lines.find((line) => line.includes("project=legacy"))).to.match(
        /concurrency=4 \(project's\) {2}keyConcurrency=4 \(legacy: npm run keys -- migrate\)/,
      );
    });
  });

  describe("migrate", () => {
    it("moves per-key limits onto projects, keeps every project's limit, and does nothing the second time", () => {
      const keys = {
        lowest: legacyKey("legacy", 7),
        lower: legacyKey("legacy", 3),
        unlimited: legacyKey("legacy"),
        ignored: legacyKey("entry", 2),
        entryKey: legacyKey("entry"),
        defaulted: legacyKey("entry-no-limit", 4),
        plain: legacyKey("plain"),
      };
      seed(
        Object.values(keys).map((made) => made.entry),
        [
          { id: "entry", concurrency: 10, createdAt: "2023-01-01T00:00:00.000Z" },
          { id: "entry-no-limit", defaultTimeout: 900 },
          { id: "lonely", concurrency: 1 },
        ],
      );
      const projectsBefore = projectsNow();
      const limitsBefore = Object.fromEntries(
        Object.entries(keys).map(([name, made]) => [name, limitOf(made.key)]),
      );
      expect(limitsBefore).to.deep.equal({
        lowest: 3,
        lower: 3,
        unlimited: 3,
        ignored: 10,
        entryKey: 10,
        defaulted: 25,
        plain: 25,
      });

      const result = run("migrate");
      expect(result.status, result.err.join("\n")).to.equal(0);
      const text = result.out.join("\n");
      expect(text).to.match(/Project legacy: created with limit 3 \(the smallest of its keys' limits/);
      expect(text).to.match(
        /Project entry: keeps its entry's limit \(10\).*removed the ignored limit from 1 key\./,
      );
      expect(text).to.match(/Project entry-no-limit: keeps its entry's limit \(the default, 25\)/);
      expect(text).to.not.match(/Project plain/);

      const secrets = readSecrets(file);
      expect(secrets.apiKeys.keys.filter((entry) => "concurrency" in entry)).to.deep.equal([]);
      expect(secrets.apiKeys.keys).to.have.length(7);
      const legacyEntry = secrets.apiKeys.projects!.find((project) => project.id === "legacy");
      expect(legacyEntry).to.include({ concurrency: 3, createdAt: "2024-01-01T00:00:00.000Z" });
      // Behaviour is preserved: every project resolves as before (updatedAt aside), every key gets its old limit.
      const withoutUpdated = (projects: ReturnType<typeof projectsNow>) =>
        projects.map(({ updatedAt: _updatedAt, ...rest }) => rest);
      expect(withoutUpdated(projectsNow())).to.deep.equal(withoutUpdated(projectsBefore));
      for (const [name, made] of Object.entries(keys))
        expect(limitOf(made.key), name).to.equal(limitsBefore[name]);

      const before = readFileSync(file, "utf8");
      const again = run("migrate");
      expect(again.status).to.equal(0);
      expect(again.out[0]).to.match(/^Nothing to migrate: no key in .* carries a limit of its own\./);
      expect(readFileSync(file, "utf8")).to.equal(before);
    });

    it("keeps every project's resolved limits for any key set (property)", () => {
      const ids = ["a", "b", "c", "d"];
      const keyArb = fc.record({
        projectId: fc.constantFrom(...ids),
        concurrency: fc.option(fc.integer({ min: 1, max: 50 }), { nil: undefined }),
        createdAt: fc.option(
          fc.integer({ min: 0, max: 10 }).map((day) => new Date(Date.UTC(2024, 0, 1 + day)).toISOString()),
          { nil: undefined },
        ),
      });
      const projectArb = fc.record({
        id: fc.constantFrom(...ids),
        concurrency: fc.option(fc.integer({ min: 1, max: 50 }), { nil: undefined }),
        defaultTimeout: fc.option(fc.integer({ min: 60, max: 21600 }), { nil: undefined }),
      });
      fc.assert(
        fc.property(
          fc.array(keyArb, { maxLength: 8 }),
          fc.uniqueArray(projectArb, { selector: (project) => project.id, maxLength: 4 }),
          (keySpecs, projectSpecs) => {
            const strip = <T extends object>(value: T) =>
              Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as T;
            const set: ApiKeySet = {
              keys: keySpecs.map((spec, index) =>
                strip({
                  hash: `sha256:${index.toString(16).padStart(64, "0")}`,
                  projectId: spec.projectId,
                  concurrency: spec.concurrency,
                  createdAt: spec.createdAt,
                }),
              ),
              projects: projectSpecs.map(strip),
            };
            const copy = structuredClone(set);
            const resolve = (value: ApiKeySet) =>
              listProjects(parseApiKeySet(JSON.stringify(value)), DEFAULTS).map(
                ({ updatedAt: _updatedAt, ...rest }) => rest,
              );
            const { set: migrated, steps } = migrateLegacyLimits(set, new Date("2025-01-01T00:00:00.000Z"));
            expect(set, "the input is left as it was").to.deep.equal(copy);
            expect(resolve(migrated)).to.deep.equal(resolve(set));
            expect(migrated.keys.some((key) => key.concurrency !== undefined)).to.equal(false);
            expect(steps.length > 0).to.equal(set.keys.some((key) => key.concurrency !== undefined));
            const twice = migrateLegacyLimits(migrated);
            expect(twice.steps).to.deep.equal([]);
            expect(twice.set).to.deep.equal(migrated);
          },
        ),
        { numRuns: 300 },
      );
    });
  });

  describe("setProject", () => {
    it("adopts the smallest legacy limit only when creating an entry, and a given limit wins", () => {
      const set: ApiKeySet = { keys: [legacyKey("p", 4).entry, legacyKey("p", 8).entry] };
      expect(setProject(set, "p").project.concurrency).to.equal(4);
      expect(setProject(set, "p").adoptedLegacyLimit).to.equal(4);
      expect(setProject(set, "p", { concurrency: 20 }).project.concurrency).to.equal(20);
      expect(set.projects, "the given set is not changed").to.equal(undefined);
      const unchanged = setProject(
        { keys: [], projects: [{ id: "p", concurrency: 3, updatedAt: "x" }] },
        "p",
        {
          concurrency: 3,
        },
      );
      expect(unchanged).to.include({ created: false, changed: false });
      expect(unchanged.project.updatedAt).to.equal("x");
      expect(() => setProject({ keys: [] }, "p", { concurrency: 0 })).to.throw(/project p: concurrency/);
    });
  });
});
