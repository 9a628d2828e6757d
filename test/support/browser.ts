import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromiumInstallHint, chromiumPath, isExecutable } from "../../local/connect/browser";
import { ensureSecretsFile, secretsPath } from "../../local/secrets-file";

/**
 * The Chromium a suite that runs a real browser uses; stops the suite, saying what to install,
 * when there is none.
 */
export function requireChromium(): string {
  const browserPath = chromiumPath();
  if (!isExecutable(browserPath)) {
    throw new Error(
      `these tests run a real browser: ${chromiumInstallHint(browserPath)} (CI installs the Debian package chromium)`,
    );
  }
  return browserPath;
}

/** A fresh local-stack home (`prefix` names its temporary folder) with an empty secrets file. */
export function newStackHome(prefix: string): { home: string; secretsFile: string } {
  const home = mkdtempSync(join(tmpdir(), prefix));
  const secretsFile = secretsPath(home);
  ensureSecretsFile(secretsFile);
  return { home, secretsFile };
}
