import * as aws from "@pulumi/aws";
import * as awsx from "@pulumi/awsx";
import * as pulumi from "@pulumi/pulumi";

/** How many NAT gateways a new VPC gets (the functions reach Secrets Manager through them). */
export type NatGatewayStrategy = "None" | "Single" | "OnePerAz";

/** An existing VPC to deploy into instead of creating one. */
export interface ExistingVpc {
  vpcId: pulumi.Input<string>;
  /** Subnets with a route to a NAT gateway (or a Secrets Manager endpoint): functions and cache. */
  privateSubnetIds: pulumi.Input<pulumi.Input<string>[]>;
  /** Subnets with a route to an internet gateway: the connect ALB. */
  publicSubnetIds: pulumi.Input<pulumi.Input<string>[]>;
}

export interface NetworkArgs {
  /** Deploy into this VPC; when absent a new one is made. */
  existing?: ExistingVpc;
  /** CIDR of a new VPC; default 10.0.0.0/16. */
  cidrBlock?: string;
  /** Availability zones of a new VPC (2..6); default 2, the least ElastiCache Multi-AZ needs. */
  availabilityZones?: number;
  /** NAT gateways of a new VPC; default `Single`. */
  natGateways?: NatGatewayStrategy;
  /**
   * An interface endpoint for Secrets Manager in the private subnets, so the functions read
   * secrets without a NAT gateway (needed with `natGateways: None`).
   */
  secretsManagerEndpoint?: boolean;
}

const CIDR_PATTERN = /^(\d{1,3}\.){3}\d{1,3}\/(1[6-9]|2[0-8])$/;

/** Checks network arguments; throws naming the argument. */
export function checkNetworkArgs(args: NetworkArgs): void {
  if (args.existing) {
    if (!args.existing.vpcId) throw new Error("network: existing.vpcId is required with an existing VPC");
    if (!args.existing.privateSubnetIds) throw new Error("network: existing.privateSubnetIds is required");
    if (!args.existing.publicSubnetIds) throw new Error("network: existing.publicSubnetIds is required");
    return;
  }
  if (args.cidrBlock !== undefined && !CIDR_PATTERN.test(args.cidrBlock)) {
    throw new Error(`network: cidrBlock must be an IPv4 CIDR from /16 to /28, got "${args.cidrBlock}"`);
  }
  const zones = args.availabilityZones ?? 2;
  if (!Number.isInteger(zones) || zones < 2 || zones > 6) {
    throw new Error(`network: availabilityZones must be a whole number from 2 to 6, got ${zones}`);
  }
  const nat = args.natGateways ?? "Single";
  if (!["None", "Single", "OnePerAz"].includes(nat)) {
    throw new Error(`network: natGateways must be None, Single or OnePerAz, got "${nat}"`);
  }
}

/**
 * The VPC the API runs in, and the security group of the API functions (made here because both
 * the cache and the functions need its id). The functions' group only sends: HTTPS anywhere
 * (Secrets Manager) here, Redis to the cache's group (added by the cache).
 */
export class Network extends pulumi.ComponentResource {
  public readonly vpcId: pulumi.Output<string>;
  public readonly vpcCidrBlock: pulumi.Output<string>;
  public readonly privateSubnetIds: pulumi.Output<string[]>;
  public readonly publicSubnetIds: pulumi.Output<string[]>;
  public readonly functionsSecurityGroupId: pulumi.Output<string>;

  constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("wallcrawler:infra:Network", name, {}, opts);
    checkNetworkArgs(args);

    if (args.existing) {
      this.vpcId = pulumi.output(args.existing.vpcId);
      this.privateSubnetIds = pulumi.output(args.existing.privateSubnetIds);
      this.publicSubnetIds = pulumi.output(args.existing.publicSubnetIds);
      this.vpcCidrBlock = aws.ec2.getVpcOutput({ id: this.vpcId }, { parent: this }).cidrBlock;
    } else {
      const cidrBlock = args.cidrBlock ?? "10.0.0.0/16";
      const vpc = new awsx.ec2.Vpc(
        `${name}-vpc`,
        {
          cidrBlock,
          numberOfAvailabilityZones: args.availabilityZones ?? 2,
          natGateways: { strategy: args.natGateways ?? "Single" },
          subnetStrategy: "Auto",
          subnetSpecs: [{ type: "Private" }, { type: "Public" }],
          enableDnsHostnames: true,
          enableDnsSupport: true,
        },
        { parent: this },
      );
      this.vpcId = vpc.vpcId;
      this.privateSubnetIds = vpc.privateSubnetIds;
      this.publicSubnetIds = vpc.publicSubnetIds;
      this.vpcCidrBlock = pulumi.output(cidrBlock);
    }

    const functionsSg = new aws.ec2.SecurityGroup(
      `${name}-functions-sg`,
      { vpcId: this.vpcId, description: "WallCrawler API functions: no inbound traffic" },
      { parent: this },
    );
    new aws.vpc.SecurityGroupEgressRule(
      `${name}-functions-https-out`,
      {
        securityGroupId: functionsSg.id,
        description: "HTTPS to Secrets Manager",
        ipProtocol: "tcp",
        fromPort: 443,
        toPort: 443,
        cidrIpv4: "0.0.0.0/0",
      },
      { parent: this },
    );
    this.functionsSecurityGroupId = functionsSg.id;

    if (args.secretsManagerEndpoint) {
      const endpointSg = new aws.ec2.SecurityGroup(
        `${name}-secrets-endpoint-sg`,
        { vpcId: this.vpcId, description: "Secrets Manager endpoint: HTTPS from the API functions" },
        { parent: this },
      );
      new aws.vpc.SecurityGroupIngressRule(
        `${name}-secrets-endpoint-in`,
        {
          securityGroupId: endpointSg.id,
          description: "HTTPS from the API functions",
          ipProtocol: "tcp",
          fromPort: 443,
          toPort: 443,
          referencedSecurityGroupId: functionsSg.id,
        },
        { parent: this },
      );
      const region = aws.getRegionOutput({}, { parent: this }).region;
      new aws.ec2.VpcEndpoint(
        `${name}-secrets-endpoint`,
        {
          vpcId: this.vpcId,
          serviceName: pulumi.interpolate`com.amazonaws.${region}.secretsmanager`,
          vpcEndpointType: "Interface",
          privateDnsEnabled: true,
          subnetIds: this.privateSubnetIds,
          securityGroupIds: [endpointSg.id],
        },
        { parent: this },
      );
    }

    this.registerOutputs({
      vpcId: this.vpcId,
      privateSubnetIds: this.privateSubnetIds,
      publicSubnetIds: this.publicSubnetIds,
      functionsSecurityGroupId: this.functionsSecurityGroupId,
    });
  }
}
