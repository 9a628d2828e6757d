/**
 * Serializes every function the way `aws.lambda.CallbackFunction` does (`callbackFactory`,
 * i.e. `serializeFunction(factory, {isFactoryFunction: true})`) and lists the node_modules
 * `computeCodePaths` would upload. Runs in its own process (it loads @pulumi/pulumi).
 * Usage: serialize-process.ts <outDir>; writes <outDir>/<function>/index.js and
 * <outDir>/manifest.json (paths relative to the repository root).
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { fallbackHandler } from "../handlers/fallback";
import { ROUTES, type RouteDefinition } from "../handlers/routes";
import type { HttpHandler } from "../lib/http";
import { createLogger } from "../lib/logger";
import { createRuntime } from "../lib/runtime";

/** Packages the Lambda runtime ships, left out of the archive (as infra passes in codePathOptions). */
export const RUNTIME_PROVIDED_PACKAGES = ["@aws-sdk/client-secrets-manager"];

export interface SerializedFunction {
  name: string;
  method?: string;
  path?: string;
  /** Where the factory came from: the infra module's own, or the bench's stand-in. */
  source: "infra/functions.ts" | "bench";
  file: string;
  codeBytes: number;
  serializeMs: number;
  /** Module specifiers the generated code requires. */
  requires: string[];
  /** Why serialization failed (then there is no file). */
  error?: string;
}

export interface SerializeManifest {
  functions: SerializedFunction[];
  /** Directories `computeCodePaths` lists (relative to the repository root). */
  uploadPaths: string[];
  excludedPackages: string[];
}

type Factory = () => HttpHandler;

interface FunctionSpec {
  name: string;
  method?: string;
  path?: string;
  factory: Factory;
  source: SerializedFunction["source"];
}

/**
 * The factories to serialize: infra/functions.ts's own (`routeHandlerFactory(route)` for each
 * route, `fallbackHandlerFactory(routes)`), so the bench measures exactly what is deployed; when
 * that module is absent, the same shape the design prescribes: `() => route.factory(createRuntime())`.
 */
function functionSpecs(root: string): { specs: FunctionSpec[]; excluded: string[] } {
  const infraPath = join(root, "infra", "functions.ts");
  if (existsSync(infraPath)) {
    const infra = require(infraPath) as {
      routeHandlerFactory?: (route: RouteDefinition) => Factory;
      fallbackHandlerFactory?: (routes: readonly RouteDefinition[]) => Factory;
      FALLBACK_NAME?: string;
      EXCLUDED_PACKAGES?: string[];
      excludedPackages?: (layerPackages?: readonly string[]) => string[];
    };
    if (typeof infra.routeHandlerFactory === "function") {
      const specs: FunctionSpec[] = ROUTES.map((route) => ({
        name: route.name,
        method: route.method,
        path: route.path,
        factory: infra.routeHandlerFactory!(route),
        source: "infra/functions.ts",
      }));
      if (typeof infra.fallbackHandlerFactory === "function") {
        specs.push({
          name: infra.FALLBACK_NAME ?? "fallback",
          factory: infra.fallbackHandlerFactory(ROUTES),
          source: "infra/functions.ts",
        });
      }
      return { specs, excluded: deployedExclusions(root, infra) };
    }
  }
  const specs: FunctionSpec[] = ROUTES.map((route) => ({
    name: route.name,
    method: route.method,
    path: route.path,
    factory: () => route.factory(createRuntime()),
    source: "bench",
  }));
  specs.push({
    name: "fallback",
    factory: () => fallbackHandler({ logger: createLogger() }, ROUTES),
    source: "bench",
  });
  return { specs, excluded: RUNTIME_PROVIDED_PACKAGES };
}

/**
 * What a deployed package leaves out: the runtime's packages and, where the program has the
 * shared-dependencies layer (infra/layer.ts), the packages the layer holds, as infra passes them
 * in `codePathOptions`. So the upload measured here is the one `pulumi up` makes.
 */
function deployedExclusions(
  root: string,
  infra: { EXCLUDED_PACKAGES?: string[]; excludedPackages?: (layerPackages?: readonly string[]) => string[] },
): string[] {
  const layerPath = join(root, "infra", "layer.ts");
  const layer = existsSync(layerPath)
    ? (require(layerPath) as { layerPackages?: () => string[] })
    : undefined;
  if (typeof infra.excludedPackages === "function" && typeof layer?.layerPackages === "function") {
    return infra.excludedPackages(layer.layerPackages());
  }
  return infra.EXCLUDED_PACKAGES ?? RUNTIME_PROVIDED_PACKAGES;
}

/** The first lines of a serialization error, without this machine's paths. */
function describeError(error: unknown, root: string): string {
  const text = error instanceof Error ? error.message : String(error);
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .slice(0, 8)
    .join("\n")
    .split(root + "/")
    .join("");
}

async function main(): Promise<void> {
  const root = resolve(__dirname, "..");
  const outDir = resolve(process.argv[2] ?? "");
  if (!process.argv[2]) throw new Error("usage: serialize-process.ts <outDir>");
  const functions: SerializedFunction[] = [];
  const { specs, excluded } = functionSpecs(root);
  for (const spec of specs) {
    const t0 = performance.now();
    const base = { name: spec.name, method: spec.method, path: spec.path, source: spec.source };
    let text: string;
    try {
      const serialized = await pulumi.runtime.serializeFunction(spec.factory, { isFactoryFunction: true });
      if (serialized.exportName !== "handler") throw new Error(`unexpected export ${serialized.exportName}`);
      text = serialized.text;
    } catch (error) {
      functions.push({
        ...base,
        file: "",
        codeBytes: 0,
        serializeMs: 0,
        requires: [],
        error: describeError(error, root),
      });
      continue;
    }
    const serializeMs = performance.now() - t0;
    const dir = join(outDir, spec.name);
    mkdirSync(dir, { recursive: true });
    const file = join(dir, "index.js");
    writeFileSync(file, text);
    const requires = [...new Set([...text.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]))].sort();
    functions.push({
      ...base,
      file: relative(root, file),
      codeBytes: Buffer.byteLength(text),
      serializeMs,
      requires,
    });
  }
  const codePaths = await pulumi.runtime.computeCodePaths({ extraExcludePackages: excluded });
  const manifest: SerializeManifest = {
    functions,
    uploadPaths: [...codePaths.keys()].map((p) => relative(root, resolve(root, p))),
    excludedPackages: excluded,
  };
  writeFileSync(join(outDir, "manifest.json"), JSON.stringify(manifest, null, 2));
  process.exit(0);
}

main().catch((error: Error) => {
  console.error(`serialize failed: ${error.stack ?? error.message}`);
  process.exit(1);
});
