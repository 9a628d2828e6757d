/**
 * `npm run keys -- <command>`: manage the local stack's API keys, projects and token keys, and
 * print the entries a deployed stack takes in its config. `npm run keys -- --help` says the same.
 *
 * WALLCRAWLER_HOME moves the local folder (default ./.wallcrawler). DEFAULT_CONCURRENCY and
 * DEFAULT_SESSION_TIMEOUT_SECONDS, read as the local stack reads them, are what a project's
 * unset fields show as.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  generateApiKey,
  listProjects,
  parseApiKeySet,
  PROJECT_ID_PATTERN,
  PROJECT_LIMITS,
  resolveProject,
  type Project,
  type ProjectEntry,
  type ProjectDefaults,
} from "../lib/apikeys";
import { envSettings } from "../lib/config";
import { rotateTokenKeySet } from "../lib/tokens";
import {
  migrateSecretsFile,
  readSecrets,
  secretsPath,
  setProject,
  writeSecrets,
  type ProjectChanges,
} from "./secrets-file";

export const KEYS_USAGE = `usage: npm run keys -- <command> [options]

API keys (a key belongs to a project; the project holds the limits all its keys share):
  create --project <id> [--concurrency N] [--default-timeout S] [--name S]
        Mint a key for the local stack and print it once (only its hash is stored). Creates the
        project when it has none. --concurrency / --default-timeout set the project's limit and
        default session timeout (shared by all its keys); without them the project keeps its own.
        --name names the key.
  create --project <id> [--concurrency N] [--default-timeout S] [--name S] --print-entry
        Mint a key for a deployed stack: print it once, with the pulumi config commands that add
        its entry to the stack's apiKeys (and, given a limit or timeout, set the project's entry
        in the stack's projects). The API-key secret is rebuilt from that config on every
        pulumi up, so never edit the secret by hand.
  list [--project <id>]
        The local keys: hash, project, the project's limit, name and creation date (never the key).
  revoke --hash <sha256:...>
        Remove a local key: requests with it answer 401 within a second.

Projects:
  projects create --project <id> [--concurrency N] [--default-timeout S] [--name S] [--owner S]
        Add a project to the local file (an existing one is refused: use projects set).
  projects set --project <id> [--concurrency N] [--default-timeout S] [--name S] [--owner S]
        Change an existing project's fields; the others keep their value.
  projects create|set --project <id> [--create-rate R] [--create-burst B] [--request-rate R] [--request-burst B]
        The project's rate limits: R requests a second on average (0 = no limit), bursts of B;
        creates, and every other route. Unset: DEFAULT_CREATE_RATE/BURST, DEFAULT_REQUEST_RATE/BURST.
  projects create|set --project <id> [...] --print-entry
        For a deployed stack: print the pulumi config commands for the project's entry in the
        stack's projects config (the local file is not touched).
  projects list [--project <id>]
        Every local project: id, name, limit, default timeout, owner and number of keys.
  migrate
        Move per-key limits (the concurrency of a key entry, from before projects) onto their
        projects: a project without entry gets one with the smallest limit of its keys, the limit
        it already had, and the keys lose theirs. Nothing else changes; running it again does
        nothing. A deployed stack: docs/deploy.md, "Migrating per-key limits to projects".

Token keys:
  rotate-token-key
        Add a new token key to the local file and make it current (older tokens still verify).
        Deployed stacks rotate with the tokenKeyIds config (docs/deploy.md).

  --concurrency N      live sessions the project may hold at once, ${PROJECT_LIMITS.concurrency.min} to ${PROJECT_LIMITS.concurrency.max}
  --default-timeout S  seconds a session lives when its create names no timeout, ${PROJECT_LIMITS.defaultTimeout.min} to ${PROJECT_LIMITS.defaultTimeout.max}
  --help               This text.`;

/** What a command printed and its exit status (the CLI's whole behaviour, for tests). */
export interface KeysResult {
  status: number;
  out: string[];
  err: string[];
}

/** The flags of a project's request rate limits (token buckets). */
const RATE_FLAGS = ["create-rate", "create-burst", "request-rate", "request-burst"] as const;

/** The flags of the commands that write a project's entry. */
const PROJECT_FLAGS = [
  "project",
  "concurrency",
  "default-timeout",
  ...RATE_FLAGS,
  "name",
  "owner",
  "print-entry",
] as const;

/** The flags each command takes (any other is refused, naming the command). */
const COMMAND_FLAGS: Record<string, readonly string[]> = {
  create: ["project", "concurrency", "default-timeout", "name", "print-entry"],
  list: ["project"],
  revoke: ["hash"],
  "rotate-token-key": [],
  "projects create": PROJECT_FLAGS,
  "projects set": PROJECT_FLAGS,
  "projects list": ["project"],
  migrate: [],
};

/** The commands that act on one project, named by --project. */
const PROJECT_REQUIRED = ["create", "projects create", "projects set"];

/** A usage error: exit status 2 with the message and the usage text. */
class UsageError extends Error {}

/** A whole number in [min, max] from a flag's text, or a UsageError naming the flag. */
function boundedInteger(flag: string, raw: string | undefined, min: number, max: number, unit = "") {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`--${flag} must be a whole number from ${min} to ${max}${unit}, got "${raw}"`);
  }
  return value;
}

function projectId(raw: string | undefined, required: boolean): string | undefined {
  if (raw === undefined) {
    if (required) throw new UsageError("--project is required");
    return undefined;
  }
  if (!PROJECT_ID_PATTERN.test(raw)) {
    throw new UsageError(
      `--project must be 1-64 letters, digits, _ or -, starting with a letter or digit, got ${JSON.stringify(raw)}`,
    );
  }
  return raw;
}

function text(flag: string, raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (raw.trim() === "" || raw.length > 200) throw new UsageError(`--${flag} must be 1 to 200 characters`);
  return raw;
}

/** The defaults a project's unset fields take, read from `env` as the handlers read them. */
export function projectDefaultsFrom(env: Record<string, string | undefined>): ProjectDefaults {
  const read = (name: string): number => {
    const setting = envSettings().find((candidate) => candidate.name === name);
    const raw = env[name]?.trim();
    const parsed = setting!.schema.safeParse(raw ? raw : undefined);
    if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? `${name} is invalid`);
    return parsed.data as number;
  };
  return {
    concurrency: read("DEFAULT_CONCURRENCY"),
    defaultTimeout: read("DEFAULT_SESSION_TIMEOUT_SECONDS"),
  };
}

/** A value quoted for a POSIX shell. */
function shellQuote(value: string): string {
  return /^[A-Za-z0-9_.:@/-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * One `pulumi config set --path` command. With --path, pulumi stores `true`/`false` as booleans
 * and integers as numbers, so a text value that looks like one is set with `--type string`.
 */
function configSet(path: string, value: string | number): string {
  const asText = typeof value === "string" && /^(-?\d+|true|false)$/.test(value) ? " --type string" : "";
  return `  pulumi config set --path '${path}'${asText} ${shellQuote(String(value))}`;
}

/** The config commands for a project's entry in the stack's `projects` list, at index M. */
function projectConfigLines(id: string, changes: ProjectChanges): string[] {
  const lines = [configSet("projects[M].id", id)];
  if (changes.name !== undefined) lines.push(configSet("projects[M].name", changes.name));
  if (changes.concurrency !== undefined)
    lines.push(configSet("projects[M].concurrency", changes.concurrency));
  if (changes.defaultTimeout !== undefined)
    lines.push(configSet("projects[M].defaultTimeout", changes.defaultTimeout));
  for (const field of ["createRate", "createBurst", "requestRate", "requestBurst"] as const) {
    if (changes[field] !== undefined) lines.push(configSet(`projects[M].${field}`, changes[field]));
  }
  if (changes.ownerId !== undefined) lines.push(configSet("projects[M].ownerId", changes.ownerId));
  return lines;
}

const PROJECT_INDEX_HINT = (id: string) =>
  `M: the index of project ${id}'s entry in projects, or the next free index when it has none`;

const keysText = (count: number) => `${count} key${count === 1 ? "" : "s"}`;

/**
 * What a project is after a change, e.g. `Project acme changed: limit 8 live sessions (was 5),
 * default timeout 300 s (the default). The limit is the project's, shared by all its keys (3 now).`
 */
function projectSummary(
  verb: string,
  after: Project,
  entry: ProjectEntry,
  before: Project | undefined,
  keyCount: number,
): string {
  const note = (field: "concurrency" | "defaultTimeout") => {
    if (entry[field] === undefined) return " (the default)";
    return before && before[field] !== after[field] ? ` (was ${before[field]})` : "";
  };
  return (
    `Project ${after.id} ${verb}: limit ${after.concurrency} live session${after.concurrency === 1 ? "" : "s"}` +
    `${note("concurrency")}, default timeout ${after.defaultTimeout} s${note("defaultTimeout")}. ` +
    `The limit is the project's, shared by all its keys (${keyCount} now).`
  );
}

/** Runs one CLI command against the secrets file of `home`. */
export function runKeys(
  argv: string[],
  home: string,
  env: Record<string, string | undefined> = process.env,
): KeysResult {
  const out: string[] = [];
  const err: string[] = [];
  const fail = (message: string, status = 2): KeysResult => {
    err.push(`error: ${message}`, "", KEYS_USAGE);
    return { status, out, err };
  };
  const help = (): KeysResult => {
    out.push(KEYS_USAGE);
    return { status: 0, out, err };
  };
  let [command, ...rest] = argv;
  if (command === undefined) return fail("a command is required");
  if (command === "--help" || command === "-h" || command === "help") return help();
  if (command === "projects" || command === "project") {
    const [sub, ...subRest] = rest;
    if (sub === undefined || sub === "--help" || sub === "-h") {
      return sub === undefined ? fail("projects needs create, set or list") : help();
    }
    command = `projects ${sub}`;
    rest = subRest;
  }
  const file = secretsPath(home);
  let values;
  try {
    values = parseArgs({
      args: rest,
      options: {
        project: { type: "string" },
        concurrency: { type: "string" },
        "default-timeout": { type: "string" },
        "create-rate": { type: "string" },
        "create-burst": { type: "string" },
        "request-rate": { type: "string" },
        "request-burst": { type: "string" },
        name: { type: "string" },
        owner: { type: "string" },
        hash: { type: "string" },
        "print-entry": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    }).values;
  } catch (error) {
    return fail((error as Error).message);
  }
  if (values.help) return help();
  const flags = COMMAND_FLAGS[command];
  if (flags === undefined) return fail(`unknown command ${command}`);
  if (values["print-entry"] && !flags.includes("print-entry")) {
    if (command === "rotate-token-key") {
      return fail(
        "--print-entry does not apply to rotate-token-key: a deployed stack rotates token keys with its tokenKeyIds config (docs/deploy.md); nothing was changed",
      );
    }
    if (command === "migrate") {
      return fail(
        `--print-entry does not apply to migrate: a deployed stack moves its limits in its config (docs/deploy.md, "Migrating per-key limits to projects"); nothing was changed`,
      );
    }
  }
  for (const [flag, value] of Object.entries(values)) {
    if (flag !== "help" && value !== undefined && value !== false && !flags.includes(flag)) {
      return fail(`--${flag} does not apply to ${command}; nothing was changed`);
    }
  }
  const needFile = () => {
    if (!existsSync(file)) throw new Error(`there is no ${file} yet: run npm start once to make it`);
  };

  let changes: ProjectChanges;
  let project: string | undefined;
  try {
    project = projectId(values.project, PROJECT_REQUIRED.includes(command));
    changes = {
      concurrency: boundedInteger(
        "concurrency",
        values.concurrency,
        PROJECT_LIMITS.concurrency.min,
        PROJECT_LIMITS.concurrency.max,
      ),
      defaultTimeout: boundedInteger(
        "default-timeout",
        values["default-timeout"],
        PROJECT_LIMITS.defaultTimeout.min,
        PROJECT_LIMITS.defaultTimeout.max,
        " seconds",
      ),
      createRate: boundedInteger(
        "create-rate",
        values["create-rate"],
        PROJECT_LIMITS.rate.min,
        PROJECT_LIMITS.rate.max,
        " a second",
      ),
      createBurst: boundedInteger(
        "create-burst",
        values["create-burst"],
        PROJECT_LIMITS.burst.min,
        PROJECT_LIMITS.burst.max,
      ),
      requestRate: boundedInteger(
        "request-rate",
        values["request-rate"],
        PROJECT_LIMITS.rate.min,
        PROJECT_LIMITS.rate.max,
        " a second",
      ),
      requestBurst: boundedInteger(
        "request-burst",
        values["request-burst"],
        PROJECT_LIMITS.burst.min,
        PROJECT_LIMITS.burst.max,
      ),
      ownerId: text("owner", values.owner),
    };
    // On `create`, --name names the key; on the projects commands, the project.
    const name = text("name", values.name);
    if (command.startsWith("projects ")) changes.name = name;
    if (command === "revoke" && !values.hash)
      throw new UsageError("--hash is required (see npm run keys -- list)");
  } catch (error) {
    if (error instanceof UsageError) return fail(error.message);
    throw error;
  }
  const changesGiven = Object.values(changes).some((value) => value !== undefined);

  try {
    const defaults = projectDefaultsFrom(env);
    switch (command) {
      case "create": {
        const id = project!;
        const now = new Date();
        const made = generateApiKey(id, { name: values.name, now });
        if (values["print-entry"]) {
          out.push(`API key (shown once, store it now): ${made.key}`);
          out.push("Add its entry to the stack's apiKeys config (N: the next free index in apiKeys):");
          out.push(configSet("apiKeys[N].hash", made.entry.hash));
          out.push(configSet("apiKeys[N].projectId", made.entry.projectId));
          if (made.entry.name !== undefined) out.push(configSet("apiKeys[N].name", made.entry.name));
          if (changesGiven) {
            out.push(
              `The limit is the project's, shared by all its keys: set it on project ${id}'s entry in the stack's projects config (${PROJECT_INDEX_HINT(id)}):`,
            );
            out.push(...projectConfigLines(id, changes));
          } else {
            out.push(
              `The key shares project ${id}'s limit (its entry in the stack's projects config, else DEFAULT_CONCURRENCY); add --concurrency N to set it.`,
            );
          }
          out.push("Then pulumi up.");
          out.push(`The entry: ${JSON.stringify(made.entry)}`);
          return { status: 0, out, err };
        }
        needFile();
        const secrets = readSecrets(file);
        const before = resolveProject(parseApiKeySet(JSON.stringify(secrets.apiKeys)), id, defaults);
        const update = setProject(secrets.apiKeys, id, changes, now);
        update.set.keys.push(made.entry);
        writeSecrets(file, { ...secrets, apiKeys: update.set });
        const after = resolveProject(parseApiKeySet(JSON.stringify(update.set)), id, defaults)!;
        const keyCount = update.set.keys.filter((entry) => entry.projectId === id).length;
        out.push(`API key for project ${id} (shown once, store it now):`);
        out.push(made.key);
        out.push(`Its hash was added to ${file}; the local stack accepts it within a second.`);
        const verb = before === undefined ? "created" : changesGiven ? "changed" : "unchanged";
        out.push(projectSummary(verb, after, update.project, before, keyCount));
        if (verb === "unchanged") {
          out.push(`Change it with npm run keys -- projects set --project ${id} --concurrency N.`);
        }
        return { status: 0, out, err };
      }
      case "list": {
        needFile();
        const set = readSecrets(file).apiKeys;
        const directory = parseApiKeySet(JSON.stringify(set));
        const keys = set.keys.filter((entry) => project === undefined || entry.projectId === project);
        if (keys.length === 0) {
          out.push(project ? `no keys for project ${project}` : "no keys yet");
        }
        for (const entry of keys) {
          const resolved = resolveProject(directory, entry.projectId, defaults)!;
          const ignored = directory.projects.has(entry.projectId);
          out.push(
            [
              entry.hash,
              `project=${entry.projectId}`,
              `concurrency=${resolved.concurrency} (project's)`,
              entry.concurrency !== undefined
                ? `keyConcurrency=${entry.concurrency} (legacy${ignored ? ", ignored" : ""}: npm run keys -- migrate)`
                : "",
              `created=${entry.createdAt ?? "unknown"}`,
              entry.name ? `name=${JSON.stringify(entry.name)}` : "",
            ]
              .filter(Boolean)
              .join("  "),
          );
        }
        return { status: 0, out, err };
      }
      case "revoke": {
        needFile();
        const secrets = readSecrets(file);
        const before = secrets.apiKeys.keys.length;
        secrets.apiKeys.keys = secrets.apiKeys.keys.filter((entry) => entry.hash !== values.hash);
        if (secrets.apiKeys.keys.length === before) {
          return fail(`no key with hash ${values.hash} in ${file}`, 1);
        }
        writeSecrets(file, secrets);
        out.push(`Revoked ${values.hash}: the local stack refuses it within a second.`);
        out.push("A deployed key: remove its entry from the stack's apiKeys config, then pulumi up.");
        return { status: 0, out, err };
      }
      case "rotate-token-key": {
        needFile();
        const secrets = readSecrets(file);
        secrets.tokenKeys = rotateTokenKeySet(secrets.tokenKeys);
        writeSecrets(file, secrets);
        out.push(
          `New current token key ${secrets.tokenKeys.current}; older keys still decrypt until you remove them.`,
        );
        return { status: 0, out, err };
      }
      case "projects create":
      case "projects set": {
        const id = project!;
        const creating = command === "projects create";
        if (!creating && !changesGiven) {
          return fail(
            "projects set needs at least one of --concurrency, --default-timeout, --create-rate, --create-burst, --request-rate, --request-burst, --name, --owner",
          );
        }
        if (values["print-entry"]) {
          out.push(
            `Set project ${id}'s entry in the stack's projects config (${PROJECT_INDEX_HINT(id)}), then pulumi up:`,
          );
          out.push(...projectConfigLines(id, changes));
          out.push("Its limit is shared by all the project's keys; remove any concurrency left on them.");
          return { status: 0, out, err };
        }
        needFile();
        const secrets = readSecrets(file);
        const directory = parseApiKeySet(JSON.stringify(secrets.apiKeys));
        const before = resolveProject(directory, id, defaults);
        if (creating && directory.projects.has(id)) {
          return fail(`project ${id} already exists: change it with npm run keys -- projects set`, 1);
        }
        if (!creating && before === undefined) {
          return fail(`there is no project ${id}: make it with npm run keys -- projects create`, 1);
        }
        const update = setProject(secrets.apiKeys, id, changes);
        if (update.changed || update.keysCleared > 0) writeSecrets(file, { ...secrets, apiKeys: update.set });
        const after = resolveProject(parseApiKeySet(JSON.stringify(update.set)), id, defaults)!;
        const keyCount = update.set.keys.filter((entry) => entry.projectId === id).length;
        const verb = update.created ? "created" : update.changed ? "changed" : "unchanged";
        out.push(projectSummary(verb, after, update.project, before, keyCount));
        if (update.adoptedLegacyLimit !== undefined && changes.concurrency === undefined) {
          out.push(
            `Its limit ${update.adoptedLegacyLimit} is the smallest its keys carried (the limit it had); they carry none now.`,
          );
        } else if (update.keysCleared > 0) {
          out.push(
            `Removed the per-key limits of ${keysText(update.keysCleared)} (the project's replaces them).`,
          );
        }
        if (update.changed) out.push("The local stack applies it within a second.");
        return { status: 0, out, err };
      }
      case "projects list": {
        needFile();
        const set = readSecrets(file).apiKeys;
        const directory = parseApiKeySet(JSON.stringify(set));
        const projects = listProjects(directory, defaults).filter(
          (candidate) => project === undefined || candidate.id === project,
        );
        if (projects.length === 0) out.push(project ? `no project ${project}` : "no projects yet");
        for (const resolved of projects) {
          const entry = directory.projects.get(resolved.id);
          const keyCount = set.keys.filter((key) => key.projectId === resolved.id).length;
          const legacy = directory.keyProjects.get(resolved.id)?.legacyLimit;
          // Which values are the defaults, not the project's own.
          const limitIsDefault = entry ? entry.concurrency === undefined : legacy === undefined;
          const timeoutIsDefault = entry?.defaultTimeout === undefined;
          out.push(
            [
              resolved.id,
              `name=${JSON.stringify(resolved.name)}`,
              `concurrency=${resolved.concurrency}${limitIsDefault ? " (default)" : ""}`,
              `defaultTimeout=${resolved.defaultTimeout}${timeoutIsDefault ? " (default)" : ""}`,
              `ownerId=${resolved.ownerId}`,
              `keys=${keyCount}`,
              entry
                ? ""
                : legacy === undefined
                  ? "(no project entry: defaults)"
                  : "(legacy: no project entry, limit from its keys; npm run keys -- migrate)",
            ]
              .filter(Boolean)
              .join("  "),
          );
        }
        return { status: 0, out, err };
      }
      case "migrate": {
        needFile();
        const steps = migrateSecretsFile(file);
        if (steps.length === 0) {
          out.push(`Nothing to migrate: no key in ${file} carries a limit of its own.`);
          return { status: 0, out, err };
        }
        for (const step of steps) {
          const keys = keysText(step.keysCleared);
          out.push(
            step.created
              ? `Project ${step.projectId}: created with limit ${step.concurrency} (the smallest of its keys' limits, the one it had); removed the limit from ${keys}.`
              : `Project ${step.projectId}: keeps its entry's limit (${step.concurrency ?? `the default, ${defaults.concurrency}`}), which already applied; removed the ignored limit from ${keys}.`,
          );
        }
        out.push("Every project's limit is what it was; keys carry no limit now.");
        return { status: 0, out, err };
      }
      default:
        return fail(`unknown command ${command}`);
    }
  } catch (error) {
    err.push(`error: ${(error as Error).message}`);
    return { status: 1, out, err };
  }
}

if (require.main === module) {
  const result = runKeys(process.argv.slice(2), resolve(process.env.WALLCRAWLER_HOME ?? ".wallcrawler"));
  for (const line of result.out) console.log(line);
  for (const line of result.err) console.error(line);
  process.exitCode = result.status;
}
