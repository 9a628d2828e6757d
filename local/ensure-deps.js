// Runs before `npm start` and `npm test`: installs the npm dependencies on a fresh clone, and
// says what to install when a tool the command needs is missing.
const { existsSync } = require("node:fs");
const { execSync, spawnSync } = require("node:child_process");
const { join } = require("node:path");

const root = join(__dirname, "..");
const [major] = process.versions.node.split(".").map(Number);
if (major < 20) {
  console.error(`Node.js 20 or newer is required (found ${process.version}).`);
  process.exit(1);
}
if (!existsSync(join(root, "node_modules", ".package-lock.json"))) {
  console.log("Installing npm dependencies (npm ci)...");
  execSync("npm ci --no-audit --no-fund", { cwd: root, stdio: "inherit" });
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
if (missing.length > 0) {
  for (const line of missing) console.error(line);
  process.exit(1);
}
