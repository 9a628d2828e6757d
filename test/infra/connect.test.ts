import { expect } from "chai";
import { Connect, connectPlan, PLAINTEXT_REFUSAL } from "../../infra/connect";
import { find, installMocks, ofType, promiseOf, recorded, settle, T } from "./mocks";

const CERT = "arn:aws:acm:us-west-2:123456789012:certificate/11111111-2222-3333-4444-555555555555";
const NET = { vpcId: "vpc-1", vpcCidrBlock: "10.0.0.0/16", publicSubnetIds: ["subnet-u1", "subnet-u2"] };

describe("infra/connect", () => {
  describe("connectPlan", () => {
    it("refuses a plaintext connect host unless the stack says it is a dev stack, saying how to fix it", () => {
      for (const args of [NET, { existingHost: "proxy.example.com", existingHostScheme: "ws" as const }]) {
        expect(() => connectPlan(args)).to.throw(PLAINTEXT_REFUSAL);
      }
      expect(PLAINTEXT_REFUSAL)
        .to.match(/certificateArn/)
        .and.match(/allowPlaintextConnect true/);
    });

    it("uses port 80 and ws without a certificate on a dev stack, 443 and wss with one", () => {
      expect(connectPlan({ ...NET, allowPlaintextConnect: true })).to.deep.include({
        createAlb: true,
        listenerPort: 80,
        scheme: "ws",
      });
      expect(connectPlan({ ...NET, certificateArn: CERT, domainName: "connect.example.com" })).to.deep.equal({
        createAlb: true,
        listenerPort: 443,
        scheme: "wss",
        host: "connect.example.com",
      });
    });

    it("makes no ALB for an existing host", () => {
      expect(connectPlan({ existingHost: "proxy.example.com" })).to.deep.include({
        createAlb: false,
        scheme: "wss",
        host: "proxy.example.com",
      });
    });

    it("refuses a certificate without a domain, a URL as host, and a bad port, naming the argument", () => {
      expect(() => connectPlan({ ...NET, certificateArn: CERT })).to.throw(/domainName/);
      expect(() => connectPlan({ existingHost: "wss://proxy.example.com/x" })).to.throw(/existingHost/);
      expect(() => connectPlan({ ...NET, allowPlaintextConnect: true, proxyPort: 70000 })).to.throw(
        /proxyPort/,
      );
      expect(() => connectPlan({ ...NET, certificateArn: "not-an-arn", domainName: "a.b" })).to.throw(
        /certificateArn/,
      );
      expect(() => connectPlan({})).to.throw(/vpcId/);
    });
  });

  describe("the Connect component", function () {
    this.timeout(20000);
    let tls: Connect;
    let existing: Connect;

    before(async () => {
      await installMocks();
      tls = new Connect("t-tls", {
        ...NET,
        certificateArn: CERT,
        domainName: "connect.example.com",
        proxyPort: 9000,
      });
      existing = new Connect("t-ext", { existingHost: "proxy.example.com" });
      await promiseOf(tls.targetGroupArn!);
      await settle();
    });

    it("refuses, under mocks, to make a plaintext ALB for a stack that is not marked dev, and makes none", () => {
      const before = ofType(T.lb, "t-plain").length;
      expect(() => new Connect("t-plain", NET)).to.throw(PLAINTEXT_REFUSAL);
      expect(ofType(T.lb, "t-plain")).to.have.length(before);
      expect(() => new Connect("t-plain-dev", { ...NET, allowPlaintextConnect: true })).to.not.throw();
    });

    it("listens on 443 with the certificate and a TLS 1.3 policy, forwarding to the Proxy's target group", () => {
      const listener = find(T.listener, "t-tls-https");
      expect(listener.inputs).to.include({
        port: 443,
        protocol: "HTTPS",
        certificateArn: CERT,
        sslPolicy: "ELBSecurityPolicy-TLS13-1-2-2021-06",
      });
      const targetGroup = find(T.targetGroup, "t-tls-proxy");
      expect(listener.inputs.defaultActions).to.deep.equal([
        { type: "forward", targetGroupArn: targetGroup.state.arn },
      ]);
      expect(targetGroup.inputs).to.include({
        port: 9000,
        protocol: "HTTP",
        targetType: "ip",
        vpcId: "vpc-1",
      });
      expect(targetGroup.inputs.healthCheck).to.include({ enabled: true, path: "/health", matcher: "200" });
    });

    it("is internet-facing in the public subnets, drops invalid headers and keeps idle WebSockets open", () => {
      const lb = find(T.lb, "t-tls-alb");
      expect(lb.inputs).to.include({
        internal: false,
        loadBalancerType: "application",
        dropInvalidHeaderFields: true,
        idleTimeout: 3600,
      });
      expect(lb.inputs.subnets).to.deep.equal(NET.publicSubnetIds);
    });

    it("admits clients only on the listener port and sends only to the Proxy port inside the VPC", () => {
      const sg = find(T.sg, "t-tls-alb-sg");
      const ingress = recorded.filter((r) => r.type === T.ingress && r.inputs.securityGroupId === sg.id);
      expect(ingress.map((r) => [r.inputs.fromPort, r.inputs.toPort])).to.deep.equal([
        [443, 443],
        [443, 443],
      ]);
      const egress = recorded.filter((r) => r.type === T.egress && r.inputs.securityGroupId === sg.id);
      expect(egress.map((r) => r.inputs)).to.deep.equal([
        {
          securityGroupId: sg.id,
          description: "to the Proxy tasks",
          ipProtocol: "tcp",
          fromPort: 9000,
          toPort: 9000,
          cidrIpv4: "10.0.0.0/16",
        },
      ]);
    });

    it("gives clients the domain as connect host over wss", async () => {
      expect(await promiseOf(tls.host)).to.equal("connect.example.com");
      expect(tls.scheme).to.equal("wss");
    });

    it("makes nothing for an existing host and passes it through", async () => {
      expect(recorded.filter((r) => r.name.startsWith("t-ext-"))).to.have.length(0);
      expect(ofType(T.lb, "t-ext")).to.have.length(0);
      expect(await promiseOf(existing.host)).to.equal("proxy.example.com");
      expect(existing.targetGroupArn).to.equal(undefined);
    });
  });
});
