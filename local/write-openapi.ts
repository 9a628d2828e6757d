/** `npm run openapi`: regenerates docs/openapi.json from the handlers' schemas. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildOpenApiDocument } from "../lib/openapi";

const pkg = require("../package.json") as { version: string };
const target = join(__dirname, "..", "docs", "openapi.json");
writeFileSync(target, JSON.stringify(buildOpenApiDocument(pkg.version), null, 2) + "\n");
console.log("wrote docs/openapi.json");
