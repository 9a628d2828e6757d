import { randomUUID } from "node:crypto";
import { request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import { fallbackHandler } from "../../handlers/fallback";
import { matchRoute, ROUTES, type RouteDefinition } from "../../handlers/routes";
import { json, type HttpResult } from "../../lib/http";
import { createMemoryLogger } from "../../lib/logger";
import { createLocalServer } from "../../local/server";
import { apiEvent, createTestWorld, ctx, uniqueProject, type TestWorld } from "../support/fixtures";

const allowOf = (headers: Record<string, string | string[] | undefined>) =>
  String(headers.allow ?? "")
    .split(",")
    .map((m) => m.trim())
    .filter(Boolean)
    .sort();

describe("routing", () => {
  describe("matchRoute", () => {
    const match = (method: string, path: string) => matchRoute(ROUTES, method, path);
    const nameOf = (method: string, path: string) => {
      const m = match(method, path);
      return m.kind === "match" ? m.route.name : m.kind;
    };

    it("maps each method and path of the API to its handler", () => {
      expect(nameOf("POST", "/v1/sessions")).to.equal("create-session");
      expect(nameOf("GET", "/v1/sessions")).to.equal("list-sessions");
      expect(nameOf("GET", "/v1/sessions/abc")).to.equal("get-session");
      expect(nameOf("POST", "/v1/sessions/abc")).to.equal("update-session");
      expect(nameOf("GET", "/v1/sessions/abc/debug")).to.equal("session-debug");
    });

    it("has one route per method and path, each reachable", () => {
      const seen = new Set(ROUTES.map((r) => `${r.method} ${r.path}`));
      expect(seen.size).to.equal(ROUTES.length);
      for (const route of ROUTES) {
        const m = match(route.method, route.path.replace("{id}", randomUUID()));
        expect(m.kind === "match" && m.route, route.name).to.equal(route);
      }
    });

    it("extracts the id, decoded, as a path parameter", () => {
      const id = randomUUID();
      const m = match("GET", `/v1/sessions/${id}/debug`);
      expect(m).to.deep.include({ kind: "match", pathParameters: { id } });
      const encoded = match("GET", "/v1/sessions/a%20b");
      expect(encoded.kind === "match" && encoded.pathParameters.id).to.equal("a b");
    });

    it("tolerates a trailing slash", () => {
      expect(nameOf("GET", "/v1/sessions/")).to.equal("list-sessions");
      expect(nameOf("POST", "/v1/sessions/abc/")).to.equal("update-session");
      const m = match("GET", "/v1/sessions/abc/debug/");
      expect(m.kind === "match" && m.pathParameters.id).to.equal("abc");
    });

    it("matches the method whatever its case", () => {
      expect(nameOf("get", "/v1/sessions")).to.equal("list-sessions");
    });

    it("says which methods a known path allows when the method is wrong", () => {
      const onCollection = match("DELETE", "/v1/sessions");
      expect(onCollection.kind).to.equal("method-not-allowed");
      expect(onCollection.kind === "method-not-allowed" && [...onCollection.allowed].sort()).to.deep.equal([
        "GET",
        "POST",
      ]);
      const onDebug = match("POST", "/v1/sessions/abc/debug");
      expect(onDebug).to.deep.equal({ kind: "method-not-allowed", allowed: ["GET"] });
    });

    it("finds nothing for an unknown path, an empty id or an undecodable one", () => {
      for (const path of [
        "/",
        "/v2/sessions",
        "/v1/session",
        "/v1/sessions/abc/debug/x",
        "/v1/sessions//debug",
      ]) {
        expect(match("GET", path).kind, path).to.equal("not-found");
      }
      expect(match("GET", "/v1/sessions/%E0%A4%A").kind).to.equal("not-found");
    });
  });

  describe("fallback handler", () => {
    const fallback = fallbackHandler({ logger: createMemoryLogger() }, ROUTES);
    const call = (method: string, path: string) =>
      fallback(apiEvent({ method, path, routePath: "$default" }), ctx());

    it("answers an unknown path with a JSON 404", async () => {
      const res = await call("GET", "/v1/nothing-here");
      expect(res.statusCode).to.equal(404);
      expect(res.headers["content-type"]).to.match(/^application\/json/);
      const body = JSON.parse(res.body);
      expect(body).to.include({ statusCode: 404, error: "Not Found" });
      expect(body.message).to.include("/v1/nothing-here");
    });

    it("answers a known path with the wrong method with a JSON 405 and an Allow header", async () => {
      const res = await call("DELETE", "/v1/sessions/" + randomUUID());
      expect(res.statusCode).to.equal(405);
      expect(allowOf(res.headers)).to.deep.equal(["GET", "POST"]);
      const body = JSON.parse(res.body);
      expect(body).to.include({ statusCode: 405, error: "Method Not Allowed" });
      expect(body.message).to.include("DELETE");

      const debug = await call("PUT", "/v1/sessions/abc/debug/");
      expect(debug.statusCode).to.equal(405);
      expect(debug.headers.allow).to.equal("GET");
    });

    it("does not echo an overlong path back in full", async () => {
      const res = await call("GET", "/" + "x".repeat(5000));
      expect(res.statusCode).to.equal(404);
      expect(res.body.length).to.be.below(400);
    });
  });

  describe("local server over HTTP", () => {
    let world: TestWorld;
    let server: Server;
    let port: number;

    /** A test-only route that answers with the event the server built. */
    const echo: RouteDefinition = {
      name: "echo",
      method: "POST",
      path: "/test-echo/{id}",
      factory:
        () =>
        async (event): Promise<HttpResult> =>
          json(200, event),
    };

    before(async () => {
      world = await createTestWorld();
      server = createLocalServer(world.runtime, { routes: [...ROUTES, echo] });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      port = (server.address() as AddressInfo).port;
    });
    after(async () => {
      await new Promise((resolve) => server.close(resolve));
      await world.close();
    });

    interface Reply {
      status: number;
      headers: Record<string, string | string[] | undefined>;
      body: string;
    }

    /** One HTTP request; header values given as arrays are sent as repeated header lines. */
    const send = (
      method: string,
      path: string,
      options: { headers?: Record<string, string | string[]>; body?: string | Buffer } = {},
    ): Promise<Reply> =>
      new Promise((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port, method, path }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks).toString(),
            }),
          );
          res.on("error", reject);
        });
        req.on("error", reject);
        for (const [name, value] of Object.entries(options.headers ?? {})) req.setHeader(name, value);
        req.end(options.body);
      });

    it("answers an unknown path with the same JSON 404", async () => {
      const res = await send("GET", "/nope");
      expect(res.status).to.equal(404);
      expect(res.headers["content-type"]).to.match(/^application\/json/);
      expect(res.headers["x-request-id"]).to.be.a("string");
      expect(JSON.parse(res.body)).to.include({ statusCode: 404, error: "Not Found" });
    });

    it("sends each answer whole with its byte length, not chunked", async () => {
      const res = await send("POST", "/test-echo/x", {
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "café ☕" }),
      });
      expect(res.status).to.equal(200);
      expect(res.headers["transfer-encoding"]).to.equal(undefined);
      expect(Number(res.headers["content-length"])).to.equal(Buffer.byteLength(res.body));
      expect(JSON.parse(res.body).body).to.contain("café ☕");
    });

    it("answers a wrong method with 405 and Allow", async () => {
      const res = await send("PUT", "/v1/sessions");
      expect(res.status).to.equal(405);
      expect(allowOf(res.headers)).to.deep.equal(["GET", "POST"]);
      expect(JSON.parse(res.body)).to.include({ statusCode: 405, error: "Method Not Allowed" });
    });

    it("serves the real routes, trailing slash or not", async () => {
      const project = uniqueProject();
      const key = world.addKey(project);
      const created = await send("POST", "/v1/sessions/", {
        headers: { "x-bb-api-key": key, "content-type": "application/json" },
        body: JSON.stringify({ timeout: 120 }),
      });
      expect(created.status, created.body).to.equal(201);
      const id = JSON.parse(created.body).id;

      const got = await send("GET", `/v1/sessions/${id}/`, { headers: { "X-BB-API-Key": key } });
      expect(got.status, got.body).to.equal(200);
      expect(JSON.parse(got.body)).to.include({ id, projectId: project, status: "RUNNING" });

      const listed = await send("GET", "/v1/sessions?status=RUNNING", { headers: { "x-bb-api-key": key } });
      expect(JSON.parse(listed.body).map((s: { id: string }) => s.id)).to.deep.equal([id]);

      const debug = await send("GET", `/v1/sessions/${id}/debug?expiresIn=60`, {
        headers: { "x-api-key": key },
      });
      expect(debug.status, debug.body).to.equal(200);

      const released = await send("POST", `/v1/sessions/${id}`, {
        headers: { "x-bb-api-key": key },
        body: '{"status":"REQUEST_RELEASE"}',
      });
      expect(released.status, released.body).to.equal(200);
      expect(JSON.parse(released.body).status).to.equal("COMPLETED");
    });

    it("joins repeated headers and query parameters with commas, as API Gateway does", async () => {
      const id = randomUUID();
      const res = await send("POST", `/test-echo/${id}?tag=a&tag=b&one=1`, {
        headers: { "X-Thing": ["first", "second"], "content-type": "application/json" },
        body: '{"hello":"world"}',
      });
      expect(res.status, res.body).to.equal(200);
      const event = JSON.parse(res.body);
      expect(event.headers["x-thing"]).to.equal("first,second");
      expect(event.queryStringParameters).to.deep.equal({ tag: "a,b", one: "1" });
      expect(event.pathParameters).to.deep.equal({ id });
      expect(event.routeKey).to.equal("POST /test-echo/{id}");
      expect(event.body).to.equal('{"hello":"world"}');
      expect(event.isBase64Encoded).to.equal(false);
      expect(event.requestContext.http.method).to.equal("POST");
    });

    it("refuses a repeated API key header with 401, as the joined value is no key", async () => {
      const key = world.addKey(uniqueProject());
      const once = await send("GET", "/v1/sessions", { headers: { "x-bb-api-key": key } });
      expect(once.status).to.equal(200);
      const twice = await send("GET", "/v1/sessions", { headers: { "x-bb-api-key": [key, key] } });
      expect(twice.status, twice.body).to.equal(401);
      expect(JSON.parse(twice.body)).to.include({ statusCode: 401, error: "Unauthorized" });
      expect(twice.body).to.not.include(key);
    });

    it("answers a repeated status filter with 400, as API Gateway's joined value is no status", async () => {
      const key = world.addKey(uniqueProject());
      const res = await send("GET", "/v1/sessions?status=RUNNING&status=COMPLETED", {
        headers: { "x-bb-api-key": key },
      });
      expect(res.status, res.body).to.equal(400);
      expect(JSON.parse(res.body).message).to.include("status must be one of");
    });

    it("answers a body over 64 KiB with a JSON 413 and creates nothing", async () => {
      const project = uniqueProject();
      const key = world.addKey(project);
      const body = JSON.stringify({ userMetadata: { blob: "x".repeat(70 * 1024) } });
      const res = await send("POST", "/v1/sessions", {
        headers: { "x-bb-api-key": key, "content-type": "application/json" },
        body,
      });
      expect(res.status, res.body).to.equal(413);
      const parsed = JSON.parse(res.body);
      expect(parsed).to.include({ statusCode: 413, error: "Payload Too Large" });
      expect(parsed.message).to.include("65536");
      const listed = await send("GET", "/v1/sessions", { headers: { "x-bb-api-key": key } });
      expect(JSON.parse(listed.body)).to.deep.equal([]);
    });
  });
});
