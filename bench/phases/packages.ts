/**
 * Package size of each serialized function: what the archive would carry (the generated code and
 * every node_modules directory `computeCodePaths` lists), and the packages its code requires only.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
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

export const packagePhase = {
  async run({ manifest, serialized }) {
    log("measuring package sizes");
    const excluded = (name: string) =>
      name.startsWith("@pulumi/") || manifest.excludedPackages.includes(name);
    const uploadDirs = new Map(manifest.uploadPaths.map((p) => [p, join(ROOT, p)]));
    const packages: PackageResult[] = [];
    for (const fn of serialized) {
      const code = readFileSync(join(ROOT, fn.file));
      const required = requiredPackageDirs(
        [...new Set(fn.requires.map(packageOf).filter((p): p is string => p !== undefined))],
        ROOT,
        excluded,
      );
      packages.push({
        function: fn.name,
        upload: measurePackage(fn.codeBytes, code, uploadDirs),
        requiredOnly: measurePackage(fn.codeBytes, code, required),
      });
    }
    return packages;
  },

  verdicts(packages, { serializationErrors }) {
    const biggest = packages.length
      ? packages.reduce((a, b) => (b.upload.totalBytes > a.upload.totalBytes ? b : a))
      : undefined;
    return [
      {
        name: `package size unzipped (largest: ${biggest?.function ?? "-"})`,
        target: `< ${bytes(TARGETS.packageBytes)}`,
        measured: biggest ? bytes(biggest.upload.totalBytes) : notMeasured(serializationErrors),
        met: !!biggest && biggest.upload.totalBytes < TARGETS.packageBytes,
      },
    ];
  },
} satisfies Phase<PackageResult[]>;
