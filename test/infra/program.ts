/**
 * Loads the whole program (index.ts) once per test run under the mocks, with the dev stack's
 * config (Pulumi.dev.yaml) plus one API-key entry.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { generateApiKey } from "../../lib/apikeys";
import { ROUTES } from "../../handlers/routes";
import { fallbackHandlerFactory, routeHandlerFactory } from "../../infra/functions";
import { installMocks, settle } from "./mocks";

/** The scalar keys of a stack file's `config:` map (Pulumi.dev.yaml holds only scalars). */
export function readStackConfig(file: string): Record<string, string> {
  const config: Record<string, string> = {};
  let inConfig = false;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (/^\S/.test(line)) inConfig = line.startsWith("config:");
    const match = inConfig ? /^ {2}([\w-]+:[\w-]+):\s*(.*?)\s*$/.exec(line) : null;
    // A key whose value is a nested block (a list of API-key entries) is left to the stack file.
    if (match && match[2] !== "") config[match[1]] = match[2].replace(/^"(.*)"$/, "$1");
  }
  return config;
}

export const DEV_CONFIG = readStackConfig(join(__dirname, "..", "..", "Pulumi.dev.yaml"));

/** An API key whose entry is in the program's config: it must appear nowhere in the stack. */
export const programKey = generateApiKey("acme", { name: "program test" });

/**
 * Why the program did not finish: CallbackFunction swallows a serialization error (the function
 * just never registers), so serialize each handler factory here and report the first failure.
 */
async function diagnoseSerialization(): Promise<string> {
  const factories = [...ROUTES.map((route) => routeHandlerFactory(route)), fallbackHandlerFactory(ROUTES)];
  for (const factory of factories) {
    try {
      await pulumi.runtime.serializeFunction(factory, { isFactoryFunction: true, serialize: () => true });
    } catch (error) {
      return `a handler could not be serialized: ${(error as Error).message}`;
    }
  }
  return "every handler serializes; some other input never resolved";
}

type Program = typeof import("../../index");
let loaded: Promise<Program> | undefined;

export function loadProgram(): Promise<Program> {
  loaded ??= (async () => {
    await installMocks();
    // The runtime keeps its own copy of PULUMI_CONFIG from load time, so set it directly.
    pulumi.runtime.setAllConfig({
      ...DEV_CONFIG,
      "wallcrawler-api:apiKeys": JSON.stringify([programKey.entry]),
    });
    const program = await import("../../index");
    try {
      await settle();
    } catch (error) {
      throw new Error(`${(error as Error).message}; ${await diagnoseSerialization()}`, { cause: error });
    }
    return program;
  })();
  return loaded;
}
