import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { EXCLUDED_PACKAGES } from "../../infra/functions";
import { recorded, T, type Recorded } from "./mocks";
import { loadProgram } from "./program";

/**
 * Upper bound on one function's code package, unzipped. Measured: about 8.5 MB (zod about 6 MB
 * of it, shipped whole: its TypeScript sources and type declarations come with the package),
 * about 2.1 MB zipped. Lambda allows 250 MB unzipped, so the bound is not about the limit: it is
 * about 40% above today's figure, so that a dependency tree that should not be there fails the
 * test: the Secrets Manager client (~8 MB with its @smithy/@aws-sdk tree), any @pulumi package,
 * or a dev tool.
 */
const MAX_PACKAGE_MB = 12;

const manifest = require("../../package.json") as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

function bytesUnder(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.size;
  return readdirSync(path).reduce((sum, entry) => sum + bytesUnder(join(path, entry)), 0);
}

interface PackageContents {
  fn: Recorded;
  /** Archive path (node_modules/<package> or __index.js) to its size in bytes. */
  entries: Map<string, number>;
  totalBytes: number;
}

async function contents(fn: Recorded): Promise<PackageContents> {
  const assets = await fn.inputs.code.assets;
  const entries = new Map<string, number>();
  for (const [name, asset] of Object.entries(
    assets as Record<string, { path?: Promise<string>; text?: Promise<string> }>,
  )) {
    if (asset.text) entries.set(name, Buffer.byteLength(await asset.text));
    else entries.set(name, bytesUnder(await asset.path!));
  }
  return { fn, entries, totalBytes: [...entries.values()].reduce((a, b) => a + b, 0) };
}

describe("the functions' code package", function () {
  this.timeout(240_000); // loading the program waits for settle() (see mocks.ts)
  let packages: PackageContents[];

  before(async () => {
    await loadProgram();
    const functions = recorded.filter((r) => r.type === T.lambda && !r.name.startsWith("t-"));
    packages = await Promise.all(functions.map(contents));
  });

  it(`stays under ${MAX_PACKAGE_MB} MB unzipped for every function`, () => {
    expect(packages.length).to.be.greaterThan(1);
    for (const pkg of packages) {
      expect(pkg.totalBytes / 1e6, pkg.fn.name).to.be.below(MAX_PACKAGE_MB);
      expect(pkg.totalBytes / 1e6, `${pkg.fn.name} holds its dependencies`).to.be.above(1);
    }
  });

  it("holds the serialized handler and the runtime dependencies", () => {
    for (const pkg of packages) {
      const names = [...pkg.entries.keys()];
      expect(names).to.include("__index.js");
      for (const dep of ["ioredis", "jose", "zod", "@aws-lambda-powertools/logger"])
        expect(names, pkg.fn.name).to.include(`node_modules/${dep}`);
    }
  });

  it("holds nothing from @pulumi, no dev dependency and not the SDK client the runtime ships", () => {
    const devOnly = Object.keys(manifest.devDependencies).filter((name) => !(name in manifest.dependencies));
    for (const pkg of packages) {
      for (const name of pkg.entries.keys()) {
        expect(name, pkg.fn.name).to.not.match(/^node_modules\/@pulumi\//);
        expect(name, pkg.fn.name).to.not.match(
          /^node_modules\/(typescript|ts-node|mocha|chai|eslint|prettier|playwright-core)$/,
        );
        for (const dev of devOnly) expect(name, pkg.fn.name).to.not.equal(`node_modules/${dev}`);
        for (const excluded of EXCLUDED_PACKAGES)
          expect(name, pkg.fn.name).to.not.equal(`node_modules/${excluded}`);
        expect(name, pkg.fn.name).to.not.match(/^node_modules\/@smithy\//);
      }
    }
  });
});
