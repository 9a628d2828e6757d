/**
 * Package size of each serialized function: what its upload carries (the generated code and every
 * node_modules directory `computeCodePaths` still lists once the runtime's and the layer's packages
 * are left out, which is `__index.js` alone when the layer holds them all), and the packages its
 * code requires only; then the shared-dependencies layer, file by file.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { deflateRawSync } from "node:zlib";
import { buildDependencyLayer } from "../../infra/layer";
import { bytes } from "../format";
import { measurePackage, packageOf, requiredPackageDirs, type SizeReport } from "../package-size";
import type { Phase } from "../phase";
import { log, ROOT } from "../settings";
import { notMeasured, TARGETS } from "../verdicts";

export interface PackageResult {
  function: string;
  upload: SizeReport;
  requiredOnly: SizeReport;
}

export interface LayerSize {
  /** Sum of its files' sizes. */
  totalBytes: number;
  /** Zip estimate, as for the packages: deflate of each file plus about 100 bytes of headers. */
  zipBytes: number;
  files: { path: string; bytes: number; zipBytes: number }[];
}

export interface PackagesResult {
  functions: PackageResult[];
  layer: LayerSize;
}

export const packagePhase = {
  async run({ manifest, serialized }) {
    log("measuring package and layer sizes");
    const excluded = (name: string) =>
      name.startsWith("@pulumi/") || manifest.excludedPackages.includes(name);
    const uploadDirs = new Map(manifest.uploadPaths.map((p) => [p, join(ROOT, p)]));
    const functions: PackageResult[] = [];
    for (const fn of serialized) {
      const code = readFileSync(join(ROOT, fn.file));
      const required = requiredPackageDirs(
        [...new Set(fn.requires.map(packageOf).filter((p): p is string => p !== undefined))],
        ROOT,
        excluded,
      );
      functions.push({
        function: fn.name,
        upload: measurePackage(fn.codeBytes, code, uploadDirs),
        requiredOnly: measurePackage(fn.codeBytes, code, required),
      });
    }
    const built = await buildDependencyLayer({ projectDir: ROOT });
    const files = built.files.map((f) => ({
      path: f.path,
      bytes: f.bytes,
      zipBytes: deflateRawSync(readFileSync(join(built.dir, f.path))).length + 100,
    }));
    files.sort((a, b) => b.bytes - a.bytes);
    const layer: LayerSize = {
      totalBytes: built.totalBytes,
      zipBytes: files.reduce((sum, f) => sum + f.zipBytes, 0),
      files,
    };
    return { functions, layer };
  },

  verdicts({ functions, layer }, { serializationErrors }) {
    const biggest = functions.length
      ? functions.reduce((a, b) => (b.upload.zipBytes > a.upload.zipBytes ? b : a))
      : undefined;
    return [
      {
        name: `package size, zipped upload (largest: ${biggest?.function ?? "-"})`,
        target: `< ${bytes(TARGETS.packageZipBytes)} zipped`,
        measured: biggest
          ? `${bytes(biggest.upload.zipBytes)} zipped, ${bytes(biggest.upload.totalBytes)} unzipped`
          : notMeasured(serializationErrors),
        met: !!biggest && biggest.upload.zipBytes < TARGETS.packageZipBytes,
      },
      {
        name: "layer size, unzipped",
        target: `< 1 MB (${TARGETS.layerBytes.toLocaleString("en-US")} bytes)`,
        measured: `${bytes(layer.totalBytes)} unzipped (${layer.totalBytes.toLocaleString("en-US")} bytes), ${bytes(layer.zipBytes)} zipped`,
        met: layer.totalBytes < TARGETS.layerBytes,
      },
    ];
  },
} satisfies Phase<PackagesResult>;
