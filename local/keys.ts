/**
 * `npm run keys -- <command>`: manage the local stack's API keys and token keys, and print the
 * entries a deployed stack takes in its config. `npm run keys -- --help` says the same.
 *
 * WALLCRAWLER_HOME moves the local folder (default ./.wallcrawler).
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { generateApiKey } from "../lib/apikeys";
import { rotateTokenKeySet } from "../lib/tokens";
import { addApiKeyEntry, readSecrets, secretsPath, writeSecrets } from "./secrets-file";

export const KEYS_USAGE = `usage: npm run keys -- <command> [options]

  create --project <id> [--concurrency N] [--name S]
        Mint a key for the local stack and print it once (only its hash is stored).
  create --project <id> [--concurrency N] [--name S] --print-entry
        Mint a key for a deployed stack: print it once, with the pulumi config commands that add
        its entry to the stack's apiKeys (the API-key secret is rebuilt from that config on every
        pulumi up, so never edit the secret by hand).
  list [--project <id>]
        The local keys: hash, project, limit, name and creation date (never the key).
  revoke --hash <sha256:...>
        Remove a local key: requests with it answer 401 within a second.
  rotate-token-key
        Add a new token key to the local file and make it current (older tokens still verify).
        Deployed stacks rotate with the tokenKeyIds config (docs/deploy.md).
  --help
        This text.`;

/** What a command printed and its exit status (the CLI's whole behaviour, for tests). */
export interface KeysResult {
  status: number;
  out: string[];
  err: string[];
}

/** Runs one CLI command against the secrets file of `home`. */
export function runKeys(argv: string[], home: string): KeysResult {
  const out: string[] = [];
  const err: string[] = [];
  const fail = (message: string, status = 2): KeysResult => {
    err.push(`error: ${message}`, "", KEYS_USAGE);
    return { status, out, err };
  };
  const [command, ...rest] = argv;
  if (command === undefined) return fail("a command is required");
  if (command === "--help" || command === "-h" || command === "help") {
    out.push(KEYS_USAGE);
    return { status: 0, out, err };
  }
  const file = secretsPath(home);
  let values;
  try {
    values = parseArgs({
      args: rest,
      options: {
        project: { type: "string" },
        concurrency: { type: "string" },
        name: { type: "string" },
        hash: { type: "string" },
        "print-entry": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    }).values;
  } catch (error) {
    return fail((error as Error).message);
  }
  if (values.help) {
    out.push(KEYS_USAGE);
    return { status: 0, out, err };
  }
  const needFile = () => {
    if (!existsSync(file)) throw new Error(`there is no ${file} yet: run npm start once to make it`);
  };
  try {
    switch (command) {
      case "create": {
        if (!values.project) return fail("--project is required");
        let concurrency: number | undefined;
        if (values.concurrency !== undefined) {
          concurrency = Number(values.concurrency);
          if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 100000) {
            return fail("--concurrency must be a whole number from 1 to 100000");
          }
        }
        const made = generateApiKey(values.project, { concurrency, name: values.name });
        if (values["print-entry"]) {
          out.push(`API key (shown once, store it now): ${made.key}`);
          out.push(
            "Add its entry to the stack's apiKeys config (use the next free index for N), then pulumi up:",
          );
          out.push(`  pulumi config set --path 'apiKeys[N].hash' ${made.entry.hash}`);
          out.push(`  pulumi config set --path 'apiKeys[N].projectId' ${made.entry.projectId}`);
          if (made.entry.concurrency !== undefined) {
            out.push(`  pulumi config set --path 'apiKeys[N].concurrency' ${made.entry.concurrency}`);
          }
          if (made.entry.name !== undefined) {
            out.push(`  pulumi config set --path 'apiKeys[N].name' '${made.entry.name.replace(/'/g, "")}'`);
          }
          out.push(`The entry: ${JSON.stringify(made.entry)}`);
          return { status: 0, out, err };
        }
        needFile();
        addApiKeyEntry(file, made.entry);
        out.push(`API key for project ${made.entry.projectId} (shown once, store it now):`);
        out.push(made.key);
        out.push(`Its hash was added to ${file}; the local stack accepts it within a second.`);
        return { status: 0, out, err };
      }
      case "list": {
        needFile();
        const keys = readSecrets(file).apiKeys.keys.filter(
          (entry) => values.project === undefined || entry.projectId === values.project,
        );
        if (keys.length === 0) {
          out.push(values.project ? `no keys for project ${values.project}` : "no keys yet");
        }
        for (const entry of keys) {
          out.push(
            [
              entry.hash,
              `project=${entry.projectId}`,
              `concurrency=${entry.concurrency ?? "default"}`,
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
        if (!values.hash) return fail("--hash is required (see npm run keys -- list)");
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
        if (values["print-entry"]) {
          return fail(
            "--print-entry does not apply to rotate-token-key: a deployed stack rotates token keys with its tokenKeyIds config (docs/deploy.md); nothing was changed",
          );
        }
        needFile();
        const secrets = readSecrets(file);
        secrets.tokenKeys = rotateTokenKeySet(secrets.tokenKeys);
        writeSecrets(file, secrets);
        out.push(
          `New current token key ${secrets.tokenKeys.current}; older keys still decrypt until you remove them.`,
        );
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
