import { expect } from "chai";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROUTES } from "../../handlers/routes";
import { buildOpenApiDocument } from "../../lib/openapi";
import { createLocalServer } from "../../local/server";
import { createTestWorld } from "../support/fixtures";
import type { AddressInfo } from "node:net";

const version = (require("../../package.json") as { version: string }).version;

describe("OpenAPI document", () => {
  it("committed docs/openapi.json matches what the schemas generate (run `npm run openapi` when this fails)", () => {
    const committed = JSON.parse(readFileSync(join(__dirname, "..", "..", "docs", "openapi.json"), "utf8"));
    expect(committed).to.deep.equal(JSON.parse(JSON.stringify(buildOpenApiDocument(version))));
  });

  it("documents every route the API serves, and nothing else", () => {
    const doc = buildOpenApiDocument(version) as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(documented.sort()).to.deep.equal(ROUTES.map((r) => `${r.method} ${r.path}`).sort());
  });

  it("states the timeout bounds the handler enforces", () => {
    const doc = buildOpenApiDocument(version) as {
      components: { schemas: { CreateSessionRequest: { properties: { timeout: Record<string, unknown> } } } };
    };
    expect(doc.components.schemas.CreateSessionRequest.properties.timeout).to.include({
      type: "integer",
      minimum: 60,
      maximum: 21600,
    });
  });

  it("is served by the local stack at /openapi.json", async () => {
    const world = await createTestWorld();
    const server = createLocalServer(world.runtime);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    try {
      const { port } = server.address() as AddressInfo;
      const res = await fetch(`http://127.0.0.1:${port}/openapi.json`);
      expect(res.status).to.equal(200);
      const body = (await res.json()) as { openapi: string; paths: Record<string, unknown> };
      expect(body.openapi).to.equal("3.1.0");
      expect(body.paths).to.have.property("/v1/sessions/{id}/debug");
    } finally {
      server.close();
      await world.close();
    }
  });
});
