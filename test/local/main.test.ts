import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { expect } from "chai";

const root = join(__dirname, "..", "..");
const run = (...args: string[]) =>
  spawnSync(process.execPath, ["-r", "ts-node/register/transpile-only", "local/main.ts", ...args], {
    cwd: root,
    encoding: "utf8",
    timeout: 30_000,
    // No Redis is reachable here: had it tried to start the stack, it would fail, not print usage.
    env: { ...process.env, REDIS_URL: "redis://127.0.0.1:1" },
  });

describe("npm start's command line", function () {
  this.timeout(40_000);

  it("--help prints the usage and the settings, and starts nothing", () => {
    const result = run("--help");
    expect(result.status).to.equal(0);
    expect(result.stdout).to.match(/^Usage: npm start/);
    expect(result.stdout).to.include("WALLCRAWLER_HOME").and.include("REDIS_URL");
    expect(result.stdout).to.not.include("listening on");
  });

  it("--version prints the package version and the Node version", () => {
    const version = (require("../../package.json") as { version: string }).version;
    const result = run("--version");
    expect(result.status).to.equal(0);
    expect(result.stdout.trim()).to.equal(`wallcrawler-api ${version} (Node ${process.version})`);
  });
});
