/**
 * The shared-dependencies Lambda layer: each runtime npm dependency the handlers load, bundled by
 * esbuild into one minified CommonJS file, at the path the serialized code's `require` names
 * (`nodejs/node_modules/ioredis/built/index.js`, ...). Lambda puts `/opt/nodejs/node_modules` on
 * NODE_PATH, so a function whose package leaves those packages out finds them there, and loads one
 * file per package instead of hundreds.
 */
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME } from "./functions";

/** One file of the layer: what the generated code `require`s, and the package it belongs to. */
export interface LayerEntry {
  /** The specifier exactly as the serialized code writes it (`zod`, `ioredis/built/index.js`). */
  specifier: string;
}

/**
 * What the serialized handlers `require` from npm (see the `require("...")` lines of any function's
 * `__index.js`), less the AWS SDK clients the Node.js runtime ships. The tracer is here although
 * lib/tracing.ts requires it lazily: the functions are deployed with active tracing, so every
 * deployed cold start loads it.
 */
export const LAYER_ENTRIES: readonly LayerEntry[] = [
  { specifier: "zod" },
  { specifier: "jose" },
  { specifier: "ioredis/built/index.js" },
  // Each Powertools bundle inlines the part of commons it uses (they import its subpaths, and
  // what they share across copies lives on globalThis in @aws/lambda-invoke-store).
  { specifier: "@aws-lambda-powertools/logger" },
  { specifier: "@aws-lambda-powertools/metrics" },
  { specifier: "@aws-lambda-powertools/tracer" },
  { specifier: "busboy/lib/index.js" },
  { specifier: "yauzl/index.js" },
  { specifier: "yazl/index.js" },
];

/** The package a specifier belongs to (`@scope/name/sub/path` -> `@scope/name`). */
export function packageName(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

/**
 * Where a specifier's bundle sits under `node_modules`, and the `main` its minimal package.json
 * names: a bare package gets `index.js`; a deep path is kept as written, so the generated code's
 * `require("ioredis/built/index.js")` finds exactly that file.
 */
export function layerFile(specifier: string): { packageDir: string; main: string } {
  const name = packageName(specifier);
  const subpath = specifier.slice(name.length).replace(/^\//, "");
  return { packageDir: name, main: subpath === "" ? "index.js" : subpath };
}

/** The npm packages the layer stands in for: the functions' packages leave these out. */
export function layerPackages(entries: readonly LayerEntry[] = LAYER_ENTRIES): string[] {
  return [...new Set(entries.map((entry) => packageName(entry.specifier)))].sort();
}

/**
 * Bumped whenever the way the layer is built changes (entries, esbuild options, the zod plugin),
 * so a cached build from the old recipe is not reused for the same lock file.
 */
const BUILD_RECIPE = 1;

/** The cache key: the lock file, the entries and the recipe. Same lock file, same key, same bytes. */
export function layerKey(lockFileText: string, entries: readonly LayerEntry[] = LAYER_ENTRIES): string {
  return createHash("sha256")
    .update(`recipe:${BUILD_RECIPE}\n`)
    .update(JSON.stringify(entries))
    .update("\n")
    .update(lockFileText)
    .digest("hex")
    .slice(0, 24);
}

/** zod's locales index (ESM or CJS build): the plugin swaps it for one that has English only. */
const ZOD_LOCALES_INDEX = /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.(c?js)$/;

/**
 * An esbuild plugin that builds zod with only its English messages: classic zod re-exports every
 * locale (`z.locales`), about 60 of them, though it configures and uses `en` alone. The API's 400
 * messages come from `en`, so they do not change.
 */
function englishOnlyZod(): import("esbuild").Plugin {
  return {
    name: "zod-english-only",
    setup(build) {
      build.onResolve({ filter: /locales[\\/]index\.c?js$/ }, (args) => {
        const full = resolve(args.resolveDir, args.path);
        const match = ZOD_LOCALES_INDEX.exec(full);
        if (!match) return undefined;
        return {
          path: full,
          namespace: "zod-english-only",
          pluginData: { dir: dirname(full), cjs: match[1] === "cjs" },
        };
      });
      build.onLoad({ filter: /.*/, namespace: "zod-english-only" }, (args) => {
        const { dir, cjs } = args.pluginData as { dir: string; cjs: boolean };
        const contents = cjs
          ? [
              '"use strict";',
              'Object.defineProperty(exports, "__esModule", { value: true });',
              'const en = require("./en.cjs");',
              "exports.en = en && en.__esModule ? en.default : en;",
            ].join("\n")
          : 'export { default as en } from "./en.js";';
        return { contents, resolveDir: dir, loader: "js" };
      });
    },
  };
}

/** One built file of the layer, relative to the layer's root (`nodejs/node_modules/...`). */
export interface LayerFile {
  path: string;
  bytes: number;
}

export interface BuiltLayer {
  /** The directory whose contents are the layer (it holds `nodejs/`). */
  dir: string;
  key: string;
  files: LayerFile[];
  totalBytes: number;
  /** True when this call found the build in the cache. */
  cached: boolean;
}

export interface BuildLayerOptions {
  /** The project whose package-lock.json and node_modules the layer is built from. */
  projectDir: string;
  /** Where builds are kept, one folder per key; default `<projectDir>/node_modules/.cache/dependency-layer`. */
  cacheDir?: string;
  entries?: readonly LayerEntry[];
}

function listFiles(root: string, dir = root): LayerFile[] {
  const files: LayerFile[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...listFiles(root, full));
    else
      files.push({
        path: full
          .slice(root.length + 1)
          .split("\\")
          .join("/"),
        bytes: statSync(full).size,
      });
  }
  return files.sort((a, b) => a.path.localeCompare(b.path));
}

/** The version of the package a resolved file belongs to (its package.json may not be exported). */
function packageVersion(file: string, name: string): string {
  for (let dir = dirname(file); dir !== dirname(dir); dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (!existsSync(manifest)) continue;
    const pkg = JSON.parse(readFileSync(manifest, "utf8")) as { name?: string; version?: string };
    if (pkg.name === name && pkg.version) return pkg.version;
  }
  throw new Error(`dependency layer: no package.json of ${name} above ${file}`);
}

/**
 * Builds the layer's directory, or finds it in the cache when the lock file (and the recipe) is
 * unchanged: the cache folder is named by `layerKey`, and a build is written elsewhere and renamed
 * into place only when complete, so a half-written build is never taken for a finished one.
 */
export async function buildDependencyLayer(options: BuildLayerOptions): Promise<BuiltLayer> {
  const projectDir = resolve(options.projectDir);
  const entries = options.entries ?? LAYER_ENTRIES;
  const lockFile = join(projectDir, "package-lock.json");
  if (!existsSync(lockFile)) throw new Error(`dependency layer: ${lockFile} is missing`);
  const key = layerKey(readFileSync(lockFile, "utf8"), entries);
  const cacheDir = resolve(
    options.cacheDir ?? join(projectDir, "node_modules", ".cache", "dependency-layer"),
  );
  const dir = join(cacheDir, key);
  const summary = (cached: boolean): BuiltLayer => {
    const files = listFiles(dir);
    return { dir, key, files, totalBytes: files.reduce((sum, f) => sum + f.bytes, 0), cached };
  };
  if (existsSync(join(dir, "nodejs"))) return summary(true);

  // Loaded here, not at the top: only building the layer needs esbuild (a dev dependency).
  const esbuild = await import("esbuild");
  const work = `${dir}.${process.pid}.${Date.now()}.tmp`;
  rmSync(work, { recursive: true, force: true });
  const modules = join(work, "nodejs", "node_modules");
  try {
    for (const entry of entries) {
      const { packageDir, main } = layerFile(entry.specifier);
      const name = packageName(entry.specifier);
      const source = require.resolve(entry.specifier, { paths: [projectDir] });
      const version = packageVersion(source, name);
      const outfile = join(modules, packageDir, main);
      await esbuild.build({
        entryPoints: [source],
        outfile,
        bundle: true,
        minify: true,
        format: "cjs",
        platform: "node",
        target: "node22",
        // Built in the order Node would resolve it, so the bundle holds what `require` would load.
        mainFields: ["main", "module"],
        plugins: [englishOnlyZod()],
        legalComments: "none",
        logLevel: "silent",
      });
      writeFileSync(
        join(modules, packageDir, "package.json"),
        JSON.stringify({ name, version, main, description: "bundled for the WallCrawler API layer" }) + "\n",
      );
    }
    mkdirSync(cacheDir, { recursive: true });
    try {
      renameSync(work, dir);
    } catch (error) {
      // Another process finished the same build first: theirs is identical.
      if (!existsSync(join(dir, "nodejs"))) throw error;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return summary(false);
}

export interface DependencyLayerArgs {
  /** The project directory (package-lock.json and node_modules); the layer is built from it. */
  projectDir: string;
  /** Where builds are cached; default under the project's node_modules/.cache. */
  cacheDir?: string;
  /** Default `LAYER_ENTRIES`. */
  entries?: readonly LayerEntry[];
}

/**
 * The layer as a Lambda LayerVersion, for the functions' runtime and architecture. Its code is a
 * FileArchive of the cached build: the same lock file gives the same bytes, so the archive's hash
 * and the preview do not change; a new lock file gives a new layer version.
 */
export class DependencyLayer extends pulumi.ComponentResource {
  public readonly arn: pulumi.Output<string>;
  /** The packages the layer holds: a function that attaches the layer leaves these out of its package. */
  public readonly packages: string[];
  /** Total unzipped bytes of the layer's files. */
  public readonly sizeBytes: pulumi.Output<number>;

  constructor(name: string, args: DependencyLayerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("wallcrawler:infra:DependencyLayer", name, {}, opts);
    if (!args.projectDir) throw new Error("dependencyLayer: projectDir is required");
    if (!existsSync(join(args.projectDir, "package-lock.json"))) {
      throw new Error(`dependencyLayer: projectDir must hold package-lock.json, got "${args.projectDir}"`);
    }
    const entries = args.entries ?? LAYER_ENTRIES;
    if (entries.length === 0) throw new Error("dependencyLayer: entries must list at least one package");
    const built = pulumi.output(
      buildDependencyLayer({ projectDir: args.projectDir, cacheDir: args.cacheDir, entries }),
    );

    const layer = new aws.lambda.LayerVersion(
      `${name}-layer`,
      {
        layerName: `${name}-${pulumi.getStack()}`.replace(/[^a-zA-Z0-9-_]/g, "-"),
        description: "WallCrawler API: runtime npm dependencies, one bundled file each",
        compatibleRuntimes: [LAMBDA_RUNTIME],
        compatibleArchitectures: [LAMBDA_ARCHITECTURE],
        code: built.apply((b) => new pulumi.asset.FileArchive(b.dir)),
      },
      { parent: this },
    );
    this.arn = layer.arn;
    this.packages = layerPackages(entries);
    this.sizeBytes = built.apply((b) => b.totalBytes);
    this.registerOutputs({ arn: this.arn, sizeBytes: this.sizeBytes });
  }
}
