/**
 * `npm run keys -- <command>`: manage API keys and token keys.
 *
 *   create --project <id> [--concurrency N] [--name S] [--print-entry]
 *       Mints a key and prints it once. Adds its hash to the local secrets file, or with
 *       --print-entry prints the entry to add to the deployed API-key secret instead.
 *   list                      Lists the local file's key entries (hashes and projects, never keys).
 *   rotate-token-key          Adds a new token key to the local file and makes it current.
 *
 * WALLCRAWLER_HOME moves the local folder (default ./.wallcrawler).
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { generateApiKey } from "../lib/apikeys";
import { rotateTokenKeySet } from "../lib/tokens";
import { addApiKeyEntry, ensureSecretsFile, readSecrets, secretsPath, writeSecrets } from "./secrets-file";

function usage(message?: string): never {
  if (message) console.error(`error: ${message}\n`);
  console.error(
    "usage: npm run keys -- create --project <id> [--concurrency N] [--name S] [--print-entry]\n" +
      "       npm run keys -- list\n" +
      "       npm run keys -- rotate-token-key",
  );
  process.exit(2);
}

function main(argv: string[]): void {
  const [command, ...rest] = argv;
  const file = secretsPath(resolve(process.env.WALLCRAWLER_HOME ?? ".wallcrawler"));
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: {
        project: { type: "string" },
        concurrency: { type: "string" },
        name: { type: "string" },
        "print-entry": { type: "boolean", default: false },
      },
      strict: true,
    });
  } catch (error) {
    usage((error as Error).message);
  }
  const values = parsed.values;
  switch (command) {
    case "create": {
      if (!values.project) usage("--project is required");
      let concurrency: number | undefined;
      if (values.concurrency !== undefined) {
        concurrency = Number(values.concurrency);
        if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 100000) {
          usage("--concurrency must be a whole number from 1 to 100000");
        }
      }
      let made;
      try {
        made = generateApiKey(values.project, { concurrency, name: values.name });
      } catch (error) {
        usage((error as Error).message);
      }
      if (values["print-entry"]) {
        console.log(`API key (shown once, store it now): ${made.key}`);
        console.log(
          'Add this entry to the "keys" array of the API-key secret (or to the apiKeys stack config):',
        );
        console.log(JSON.stringify(made.entry));
      } else {
        ensureSecretsFile(file);
        addApiKeyEntry(file, made.entry);
        console.log(`API key for project ${made.entry.projectId} (shown once, store it now):`);
        console.log(made.key);
        console.log(`Its hash was added to ${file}; the local stack accepts it within a second.`);
      }
      return;
    }
    case "list": {
      ensureSecretsFile(file);
      for (const entry of readSecrets(file).apiKeys.keys) {
        console.log(
          `${entry.hash}  project=${entry.projectId}  concurrency=${entry.concurrency ?? "default"}  ${entry.name ?? ""}`,
        );
      }
      return;
    }
    case "rotate-token-key": {
      ensureSecretsFile(file);
      const secrets = readSecrets(file);
      secrets.tokenKeys = rotateTokenKeySet(secrets.tokenKeys);
      writeSecrets(file, secrets);
      console.log(
        `New current token key ${secrets.tokenKeys.current}; older keys still decrypt until you remove them.`,
      );
      return;
    }
    default:
      usage(command ? `unknown command ${command}` : "a command is required");
  }
}

main(process.argv.slice(2));
