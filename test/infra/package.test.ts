import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { deflateRawSync } from "node:zlib";
import { expect } from "chai";
import { EXCLUDED_PACKAGES } from "../../infra/functions";
import { layerPackages } from "../../infra/layer";
import { find, recorded, T, type Recorded } from "./mocks";
import { loadProgram } from "./program";

/**
 * Upper bound on one function's code package as uploaded (zipped). With the runtime dependencies
 * in the shared layer, a package is its generated `__index.js` alone: measured about 37 KiB zipped
 * (211 KiB unzipped) for create-session, the largest. The bound is the target; a
 * dependency tree that slips back into the package (zod alone is 1.4 MB zipped) fails it.
 */
const MAX_PACKAGE_ZIP_KIB = 100;
/** Unzipped, the generated code only: a node_modules folder of any size would show here. */
const MAX_PACKAGE_KIB = 320;

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
  /** Deflate size of the generated code (what the zip holds of it). */
  codeZipBytes: number;
}

async function contents(fn: Recorded): Promise<PackageContents> {
  const assets = await fn.inputs.code.assets;
  const entries = new Map<string, number>();
  let codeZipBytes = 0;
  for (const [name, asset] of Object.entries(
    assets as Record<string, { path?: Promise<string>; text?: Promise<string> }>,
  )) {
    if (asset.text) {
      const text = await asset.text;
      entries.set(name, Buffer.byteLength(text));
      if (name === "__index.js") codeZipBytes = deflateRawSync(Buffer.from(text)).length;
    } else entries.set(name, bytesUnder(await asset.path!));
  }
  return { fn, entries, totalBytes: [...entries.values()].reduce((a, b) => a + b, 0), codeZipBytes };
}

describe("the functions' code package", function () {
  this.timeout(240_000); // loading the program waits for settle() (see mocks.ts)
  let packages: PackageContents[];

  before(async () => {
    await loadProgram();
    const functions = recorded.filter((r) => r.type === T.lambda && !r.name.startsWith("t-"));
    packages = await Promise.all(functions.map(contents));
  });

  it(`stays under ${MAX_PACKAGE_ZIP_KIB} KiB zipped (${MAX_PACKAGE_KIB} KiB unzipped) for every function`, () => {
    expect(packages.length).to.be.greaterThan(1);
    for (const pkg of packages) {
      expect(pkg.codeZipBytes / 1024, pkg.fn.name).to.be.below(MAX_PACKAGE_ZIP_KIB);
      expect(pkg.totalBytes / 1024, pkg.fn.name).to.be.below(MAX_PACKAGE_KIB);
    }
  });

  it("holds the serialized handler only: every runtime dependency comes from the layer", () => {
    const layered = layerPackages();
    for (const dep of ["ioredis", "jose", "zod", "@aws-lambda-powertools/logger"])
      expect(layered).to.include(dep);
    for (const pkg of packages) expect([...pkg.entries.keys()], pkg.fn.name).to.deep.equal(["__index.js"]);
  });

  it("attaches the program's one dependency layer to every function", () => {
    const layer = find(T.layer, "deps-layer");
    for (const pkg of packages) expect(pkg.fn.inputs.layers, pkg.fn.name).to.deep.equal([layer.state.arn]);
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
