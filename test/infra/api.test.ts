import { expect } from "chai";
import { accessLogFormat, Api, checkRouteKeys, invokeSourceSuffix } from "../../infra/api";
import { find, installMocks, ofType, promiseOf, settle, T } from "./mocks";

const fnArn = (name: string) => `arn:aws:lambda:us-west-2:123456789012:function:${name}`;

describe("infra/api", () => {
  describe("route helpers", () => {
    it("scopes each route's invoke permission to its method and path, path parameters as *", () => {
      expect(invokeSourceSuffix("POST /v1/sessions")).to.equal("/*/POST/v1/sessions");
      expect(invokeSourceSuffix("GET /v1/sessions/{id}/debug")).to.equal("/*/GET/v1/sessions/*/debug");
      expect(invokeSourceSuffix("$default")).to.equal("/*/$default");
    });

    it("needs unique, well-formed route keys and a $default route", () => {
      expect(() => checkRouteKeys(["GET /v1/sessions", "$default"])).to.not.throw();
      expect(() => checkRouteKeys(["GET /v1/sessions"])).to.throw(/\$default/);
      expect(() => checkRouteKeys(["GET /v1/sessions", "GET /v1/sessions", "$default"])).to.throw(/twice/);
      expect(() => checkRouteKeys(["FETCH /x", "$default"])).to.throw(/malformed/);
    });

    it("logs requests as JSON without headers, query strings or bodies", () => {
      const format = accessLogFormat();
      const parsed = JSON.parse(format);
      expect(parsed.requestId).to.equal("$context.requestId");
      expect(format).to.not.match(/header|querystring|body|\$input/i);
    });
  });

  describe("the Api component", function () {
    this.timeout(20000);
    let api: Api;

    before(async () => {
      await installMocks();
      api = new Api("t-api", {
        routes: [
          {
            name: "create",
            routeKey: "POST /v1/sessions",
            functionName: "fn-create",
            functionArn: fnArn("fn-create"),
          },
          {
            name: "get",
            routeKey: "GET /v1/sessions/{id}",
            functionName: "fn-get",
            functionArn: fnArn("fn-get"),
          },
          {
            name: "fallback",
            routeKey: "$default",
            functionName: "fn-fallback",
            functionArn: fnArn("fn-fallback"),
          },
        ],
        throttlingRateLimit: 7,
        throttlingBurstLimit: 9,
        accessLogRetentionDays: 14,
      });
      await promiseOf(api.url);
      await settle();
    });

    it("is an HTTP API whose every route targets a payload-2.0 proxy integration of its function", () => {
      expect(find(T.api, "t-api-http").inputs.protocolType).to.equal("HTTP");
      const routes = ofType(T.route, "t-api-");
      expect(routes.map((r) => r.inputs.routeKey).sort()).to.deep.equal([
        "$default",
        "GET /v1/sessions/{id}",
        "POST /v1/sessions",
      ]);
      for (const [name, fn] of [
        ["create", "fn-create"],
        ["get", "fn-get"],
        ["fallback", "fn-fallback"],
      ]) {
        const integration = find(T.integration, `t-api-${name}`);
        expect(integration.inputs).to.include({
          integrationType: "AWS_PROXY",
          payloadFormatVersion: "2.0",
          integrationUri: fnArn(fn),
        });
        expect(find(T.route, `t-api-${name}`).inputs.target).to.equal(`integrations/${integration.id}`);
      }
    });

    it("lets only this API's routes invoke the functions", () => {
      const executionArn = find(T.api, "t-api-http").state.executionArn;
      expect(find(T.permission, "t-api-create-invoke").inputs).to.include({
        function: "fn-create",
        principal: "apigateway.amazonaws.com",
        action: "lambda:InvokeFunction",
        sourceArn: `${executionArn}/*/POST/v1/sessions`,
      });
      expect(find(T.permission, "t-api-get-invoke").inputs.sourceArn).to.equal(
        `${executionArn}/*/GET/v1/sessions/*`,
      );
      expect(find(T.permission, "t-api-fallback-invoke").inputs.sourceArn).to.equal(
        `${executionArn}/*/$default`,
      );
    });

    it("auto-deploys the $default stage with the given throttling and access logs kept for the given days", async () => {
      const stage = find(T.stage, "t-api-stage");
      expect(stage.inputs).to.include({ name: "$default", autoDeploy: true });
      expect(stage.inputs.defaultRouteSettings).to.include({
        throttlingRateLimit: 7,
        throttlingBurstLimit: 9,
      });
      const logs = find(T.logGroup, "t-api-access-logs");
      expect(stage.inputs.accessLogSettings).to.deep.equal({
        destinationArn: logs.state.arn,
        format: accessLogFormat(),
      });
      expect(logs.inputs.retentionInDays).to.equal(14);
      expect(await promiseOf(api.url)).to.match(/^https:\/\/\w+\.execute-api\.us-west-2\.amazonaws\.com$/);
    });

    it("refuses zero throttling and a bad log retention, naming the argument", () => {
      const routes = [{ name: "f", routeKey: "$default", functionName: "f", functionArn: fnArn("f") }];
      expect(() => new Api("t-bad-rate", { routes, throttlingRateLimit: 0 })).to.throw(/throttlingRateLimit/);
      expect(() => new Api("t-bad-logs", { routes, accessLogRetentionDays: 2 })).to.throw(
        /accessLogRetentionDays/,
      );
    });
  });
});
