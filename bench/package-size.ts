/**
 * Package size of a serialized function: its generated code plus the node_modules directories
 * that would go into the archive, unzipped (sum of file sizes) and zipped (deflate estimate).
 */
import { existsSync, lstatSync, readdirSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative } from "node:path";
import { deflateRawSync } from "node:zlib";

export interface PackageBytes {
  name: string;
  bytes: number;
  zipBytes: number;
  files: number;
}

export interface SizeReport {
  /** Unzipped: generated code + every listed package. */
  totalBytes: number;
  /** Zip estimate: deflate (level 6) of each file plus about 100 bytes of zip headers per file. */
  zipBytes: number;
  codeBytes: number;
  packages: PackageBytes[];
}

interface Walked {
  bytes: number;
  zipBytes: number;
  files: number;
}

/** Sums a directory tree; a file already counted (in `seen`) is not counted again. */
function walk(dir: string, seen: Set<string>, zip: boolean): Walked {
  const total: Walked = { bytes: 0, zipBytes: 0, files: 0 };
  const stack = [dir];
  while (stack.length > 0) {
    const current = stack.pop()!;
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const full = join(current, entry.name);
      if (entry.isDirectory()) stack.push(full);
      else if (entry.isFile() && !seen.has(full)) {
        seen.add(full);
        const size = lstatSync(full).size;
        total.bytes += size;
        total.files += 1;
        if (zip) total.zipBytes += deflateRawSync(readFileSync(full)).length + 100;
      }
    }
  }
  return total;
}

/** The package name of a module specifier (`@scope/name/sub/path` -> `@scope/name`), or undefined for a builtin. */
export function packageOf(specifier: string): string | undefined {
  const bare = specifier.replace(/^node:/, "");
  if (builtinModules.includes(bare) || builtinModules.includes(bare.split("/")[0])) return undefined;
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

/** Node's lookup: `<dir>/node_modules/<name>`, then each parent's. */
function findPackageDir(name: string, fromDir: string, root: string): string | undefined {
  let dir = fromDir;
  for (;;) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dir === root || dirname(dir) === dir) return undefined;
    dir = dirname(dir);
  }
}

/** Package directories a set of required packages pulls in, transitively through `dependencies`. */
export function requiredPackageDirs(
  names: string[],
  root: string,
  exclude: (name: string) => boolean,
): Map<string, string> {
  const found = new Map<string, string>();
  const queue: { name: string; from: string }[] = names.map((name) => ({ name, from: root }));
  while (queue.length > 0) {
    const { name, from } = queue.shift()!;
    if (exclude(name)) continue;
    const dir = findPackageDir(name, from, root);
    if (!dir || [...found.values()].includes(dir)) continue;
    found.set(relative(root, dir), dir);
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
      queue.push({ name: dep, from: dir });
    }
  }
  return found;
}

/** Sizes of the code text plus the given package directories (label -> absolute dir). */
export function measurePackage(codeBytes: number, code: Buffer, dirs: Map<string, string>): SizeReport {
  const seen = new Set<string>();
  const packages: PackageBytes[] = [];
  for (const [label, dir] of dirs) {
    const walked = walk(dir, seen, true);
    packages.push({ name: label.replace(/^node_modules\//, ""), ...walked });
  }
  packages.sort((a, b) => b.bytes - a.bytes);
  const codeZip = deflateRawSync(code).length + 100;
  return {
    codeBytes,
    totalBytes: codeBytes + packages.reduce((sum, p) => sum + p.bytes, 0),
    zipBytes: codeZip + packages.reduce((sum, p) => sum + p.zipBytes, 0),
    packages,
  };
}
