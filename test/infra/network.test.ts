import { expect } from "chai";
import { checkNetworkArgs, Network } from "../../infra/network";
import { find, installMocks, ofType, promiseOf, recorded, settle, T } from "./mocks";

describe("infra/network", () => {
  describe("checkNetworkArgs", () => {
    it("accepts the defaults and an existing VPC", () => {
      expect(() => checkNetworkArgs({})).to.not.throw();
      expect(() =>
        checkNetworkArgs({ existing: { vpcId: "vpc-1", privateSubnetIds: ["a"], publicSubnetIds: ["b"] } }),
      ).to.not.throw();
    });

    it("refuses a bad CIDR, zone count or NAT strategy, naming the argument", () => {
      expect(() => checkNetworkArgs({ cidrBlock: "10.0.0.0" })).to.throw(/cidrBlock/);
      expect(() => checkNetworkArgs({ availabilityZones: 1 })).to.throw(/availabilityZones/);
      expect(() => checkNetworkArgs({ natGateways: "Many" as never })).to.throw(/natGateways/);
      expect(() =>
        checkNetworkArgs({ existing: { vpcId: "", privateSubnetIds: [], publicSubnetIds: [] } }),
      ).to.throw(/vpcId/);
    });
  });

  describe("the Network component", function () {
    this.timeout(20000);
    let created: Network;
    let existing: Network;

    before(async () => {
      await installMocks();
      created = new Network("t-new", {
        natGateways: "OnePerAz",
        availabilityZones: 3,
        secretsManagerEndpoint: true,
      });
      existing = new Network("t-old", {
        existing: {
          vpcId: "vpc-existing",
          privateSubnetIds: ["subnet-p1", "subnet-p2"],
          publicSubnetIds: ["subnet-u1", "subnet-u2"],
        },
      });
      await promiseOf(created.functionsSecurityGroupId);
      await promiseOf(existing.vpcCidrBlock);
      await settle();
    });

    it("makes an awsx VPC with private and public subnets and the NAT strategy asked for", async () => {
      const vpc = find(T.vpc, "t-new-vpc");
      expect(vpc.inputs).to.deep.include({
        cidrBlock: "10.0.0.0/16",
        numberOfAvailabilityZones: 3,
        natGateways: { strategy: "OnePerAz" },
      });
      expect(vpc.inputs.subnetSpecs.map((s: { type: string }) => s.type).sort()).to.deep.equal([
        "Private",
        "Public",
      ]);
      expect(await promiseOf(created.vpcId)).to.equal(vpc.state.vpcId);
      expect(await promiseOf(created.privateSubnetIds)).to.deep.equal(vpc.state.privateSubnetIds);
      expect(await promiseOf(created.publicSubnetIds)).to.deep.equal(vpc.state.publicSubnetIds);
    });

    it("gives the functions a group that admits nothing and sends only HTTPS out", () => {
      const sg = find(T.sg, "t-new-functions-sg");
      expect(sg.inputs.ingress ?? []).to.deep.equal([]);
      expect(
        recorded.filter((r) => r.type === T.ingress && r.inputs.securityGroupId === sg.id),
      ).to.deep.equal([]);
      const egress = recorded.filter((r) => r.type === T.egress && r.inputs.securityGroupId === sg.id);
      expect(egress.map((r) => r.inputs)).to.deep.equal([
        {
          securityGroupId: sg.id,
          description: "HTTPS to Secrets Manager",
          ipProtocol: "tcp",
          fromPort: 443,
          toPort: 443,
          cidrIpv4: "0.0.0.0/0",
        },
      ]);
    });

    it("can add a private Secrets Manager endpoint reachable only from the functions", () => {
      const endpoint = find(T.vpcEndpoint, "t-new-secrets-endpoint");
      expect(endpoint.inputs).to.include({
        serviceName: "com.amazonaws.us-west-2.secretsmanager",
        vpcEndpointType: "Interface",
        privateDnsEnabled: true,
      });
      const endpointSg = find(T.sg, "t-new-secrets-endpoint-sg");
      expect(endpoint.inputs.securityGroupIds).to.deep.equal([endpointSg.id]);
      const ingress = find(T.ingress, "t-new-secrets-endpoint-in");
      expect(ingress.inputs).to.include({
        securityGroupId: endpointSg.id,
        fromPort: 443,
        referencedSecurityGroupId: find(T.sg, "t-new-functions-sg").id,
      });
    });

    it("uses an existing VPC's ids as given, reads its CIDR, and makes no VPC", async () => {
      expect(ofType(T.vpc, "t-old")).to.have.length(0);
      expect(await promiseOf(existing.vpcId)).to.equal("vpc-existing");
      expect(await promiseOf(existing.privateSubnetIds)).to.deep.equal(["subnet-p1", "subnet-p2"]);
      expect(await promiseOf(existing.publicSubnetIds)).to.deep.equal(["subnet-u1", "subnet-u2"]);
      expect(await promiseOf(existing.vpcCidrBlock)).to.equal("10.20.0.0/16");
      expect(find(T.sg, "t-old-functions-sg").inputs.vpcId).to.equal("vpc-existing");
      expect(ofType(T.vpcEndpoint, "t-old")).to.have.length(0);
    });
  });
});
