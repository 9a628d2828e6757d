import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { envSettings } from "../../lib/config";
import { TUNABLE_SETTINGS } from "../../infra/functions";

/** The README's handler configuration table: variable name to documented default. */
function readmeTable(): Map<string, string> {
  const readme = readFileSync(join(__dirname, "..", "..", "README.md"), "utf8");
  const section = readme.slice(
    readme.indexOf("## Configuration"),
    readme.indexOf("The local stack also reads"),
  );
  const rows = new Map<string, string>();
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((cell) => cell.trim());
    if (cells.length < 4 || !cells[1].startsWith("`")) continue;
    const names = [...cells[1].matchAll(/`([A-Z_]+)`/g)].map((m) => m[1]);
    const defaults = cells[2].split(/,\s*/).map((value) =>
      value
        .replace(/`/g, "")
        .replace(/\s*\(.*$/, "")
        .trim(),
    );
    names.forEach((name, i) => rows.set(name, defaults[Math.min(i, defaults.length - 1)]));
  }
  return rows;
}

describe("README: the configuration table", () => {
  it("lists exactly the variables the handlers read, each with the default they use", () => {
    const table = readmeTable();
    const settings = envSettings();
    expect([...table.keys()].sort()).to.deep.equal(settings.map((s) => s.name).sort());
    for (const setting of settings)
      expect(table.get(setting.name), setting.name).to.equal(setting.documentedDefault);
  });

  it("the settings a stack may tune are derived from the same list", () => {
    expect(TUNABLE_SETTINGS).to.include("DEFAULT_CONCURRENCY").and.include("POWERTOOLS_LOG_LEVEL");
    expect(TUNABLE_SETTINGS).to.not.include("JWE_SECRET_ARN");
    expect([...TUNABLE_SETTINGS].sort()).to.deep.equal(
      envSettings()
        .filter((s) => s.tunable)
        .map((s) => s.name)
        .sort(),
    );
  });
});
