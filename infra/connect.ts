import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

export interface ConnectArgs {
  /**
   * A connect host that already exists (another stack's ALB or a domain): no ALB is made and
   * the functions put this host in `connectUrl`.
   */
  existingHost?: string;
  /** Scheme clients use on an existing host; default `wss`. */
  existingHostScheme?: "ws" | "wss";
  vpcId?: pulumi.Input<string>;
  /** CIDR of the VPC: the ALB may send only to targets inside it. */
  vpcCidrBlock?: pulumi.Input<string>;
  /** Public subnets in two or more zones. */
  publicSubnetIds?: pulumi.Input<pulumi.Input<string>[]>;
  /** ACM certificate for the HTTPS listener (443); without one, a plain listener on 80 (dev only). */
  certificateArn?: string;
  /** Host name clients use (a CNAME to the ALB covered by the certificate); required with a certificate. */
  domainName?: string;
  /** Port the Proxy's tasks listen on; default 8080. */
  proxyPort?: number;
  /** Health-check path of the Proxy; default `/health`. */
  healthCheckPath?: string;
  /** Idle timeout in seconds: long, since a WebSocket may sit quiet; default 3600. */
  idleTimeoutSeconds?: number;
  /**
   * Allow a plaintext (`ws://`, port 80) connect host: only for a dev stack. Without it a stack
   * with no certificate (or an existing host with scheme `ws`) is refused, since every client's
   * bearer `signingKey` would cross the internet in clear text.
   */
  allowPlaintextConnect?: boolean;
}

/** What a refusal of a plaintext connect host tells the user. */
export const PLAINTEXT_REFUSAL =
  "connect: without a TLS certificate the ALB would listen on plain HTTP port 80 and every session's " +
  "signingKey would cross the internet in clear text. Set certificateArn (an ACM certificate) and " +
  "connectDomain, e.g. `pulumi config set certificateArn arn:aws:acm:...` and `pulumi config set " +
  "connectDomain connect.example.com`; or, for a dev stack only, `pulumi config set allowPlaintextConnect true`.";

/** How clients reach the Proxy: decided from the arguments alone (pure; unit-tested). */
export interface ConnectPlan {
  createAlb: boolean;
  scheme: "ws" | "wss";
  listenerPort: 80 | 443;
  /** Fixed host, or undefined when it is the ALB's DNS name. */
  host?: string;
}

const HOST_PATTERN = /^[A-Za-z0-9.-]+(:\d{1,5})?$/;

/** Checks the arguments and decides ALB or not, port and scheme; throws naming the argument. */
export function connectPlan(args: ConnectArgs): ConnectPlan {
  if (args.existingHost !== undefined) {
    if (!HOST_PATTERN.test(args.existingHost)) {
      throw new Error(
        `connect: existingHost must be a host name (optionally :port), not a URL, got "${args.existingHost}"`,
      );
    }
    if (args.certificateArn)
      throw new Error("connect: certificateArn has no use with existingHost (no ALB is made)");
    if (args.existingHostScheme === "ws" && !args.allowPlaintextConnect) throw new Error(PLAINTEXT_REFUSAL);
    return {
      createAlb: false,
      scheme: args.existingHostScheme ?? "wss",
      listenerPort: 443,
      host: args.existingHost,
    };
  }
  if (!args.vpcId) throw new Error("connect: vpcId is required to make the ALB");
  if (!args.publicSubnetIds) throw new Error("connect: publicSubnetIds is required to make the ALB");
  if (args.domainName !== undefined && !HOST_PATTERN.test(args.domainName)) {
    throw new Error(`connect: domainName must be a host name, got "${args.domainName}"`);
  }
  const port = args.proxyPort ?? 8080;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`connect: proxyPort must be a port number, got ${port}`);
  }
  const idle = args.idleTimeoutSeconds ?? 3600;
  if (!Number.isInteger(idle) || idle < 1 || idle > 4000) {
    throw new Error(`connect: idleTimeoutSeconds must be whole seconds from 1 to 4000, got ${idle}`);
  }
  if (args.certificateArn) {
    if (!/^arn:aws[a-z-]*:acm:[^:]+:\d{12}:certificate\/.+$/.test(args.certificateArn)) {
      throw new Error(`connect: certificateArn must be an ACM certificate ARN, got "${args.certificateArn}"`);
    }
    // The ALB's own DNS name is not on any certificate of yours: clients need the domain.
    if (!args.domainName) throw new Error("connect: domainName is required with certificateArn");
    return { createAlb: true, scheme: "wss", listenerPort: 443, host: args.domainName };
  }
  if (!args.allowPlaintextConnect) throw new Error(PLAINTEXT_REFUSAL);
  return { createAlb: true, scheme: "ws", listenerPort: 80, host: args.domainName };
}

/**
 * The public entry of the Proxy: an internet-facing ALB with one listener (443 with the
 * certificate, or 80 for a dev stack) forwarding to a target group that the Proxy's ECS service
 * registers its tasks in. With an existing host, nothing is made.
 */
export class Connect extends pulumi.ComponentResource {
  /** Host (and optional port) for `connectUrl`: the domain, the existing host, or the ALB's DNS name. */
  public readonly host: pulumi.Output<string>;
  public readonly scheme: "ws" | "wss";
  public readonly albDnsName?: pulumi.Output<string>;
  public readonly albSecurityGroupId?: pulumi.Output<string>;
  public readonly targetGroupArn?: pulumi.Output<string>;

  constructor(name: string, args: ConnectArgs, opts?: pulumi.ComponentResourceOptions) {
    super("wallcrawler:infra:Connect", name, {}, opts);
    const plan = connectPlan(args);
    this.scheme = plan.scheme;

    if (!plan.createAlb) {
      this.host = pulumi.output(plan.host!);
      this.registerOutputs({ host: this.host });
      return;
    }

    const proxyPort = args.proxyPort ?? 8080;
    const albSg = new aws.ec2.SecurityGroup(
      `${name}-alb-sg`,
      { vpcId: args.vpcId!, description: "WallCrawler connect ALB: clients in, Proxy tasks out" },
      { parent: this },
    );
    for (const [suffix, cidr] of [
      ["v4", { cidrIpv4: "0.0.0.0/0" }],
      ["v6", { cidrIpv6: "::/0" }],
    ] as const) {
      new aws.vpc.SecurityGroupIngressRule(
        `${name}-alb-in-${suffix}`,
        {
          securityGroupId: albSg.id,
          description: `clients on ${plan.listenerPort}`,
          ipProtocol: "tcp",
          fromPort: plan.listenerPort,
          toPort: plan.listenerPort,
          ...cidr,
        },
        { parent: this },
      );
    }
    new aws.vpc.SecurityGroupEgressRule(
      `${name}-alb-out`,
      {
        securityGroupId: albSg.id,
        description: "to the Proxy tasks",
        ipProtocol: "tcp",
        fromPort: proxyPort,
        toPort: proxyPort,
        cidrIpv4: args.vpcCidrBlock!,
      },
      { parent: this },
    );

    const alb = new aws.lb.LoadBalancer(
      `${name}-alb`,
      {
        internal: false,
        loadBalancerType: "application",
        subnets: args.publicSubnetIds!,
        securityGroups: [albSg.id],
        idleTimeout: args.idleTimeoutSeconds ?? 3600,
        dropInvalidHeaderFields: true,
        enableDeletionProtection: false,
      },
      { parent: this },
    );
    const targetGroup = new aws.lb.TargetGroup(
      `${name}-proxy`,
      {
        vpcId: args.vpcId!,
        targetType: "ip",
        protocol: "HTTP",
        port: proxyPort,
        deregistrationDelay: 30,
        healthCheck: {
          enabled: true,
          path: args.healthCheckPath ?? "/health",
          protocol: "HTTP",
          matcher: "200",
          interval: 15,
          timeout: 5,
          healthyThreshold: 2,
          unhealthyThreshold: 3,
        },
      },
      { parent: this },
    );
    const forward = [{ type: "forward", targetGroupArn: targetGroup.arn }];
    new aws.lb.Listener(
      `${name}-${plan.listenerPort === 443 ? "https" : "http"}`,
      plan.listenerPort === 443
        ? {
            loadBalancerArn: alb.arn,
            port: 443,
            protocol: "HTTPS",
            certificateArn: args.certificateArn,
            sslPolicy: "ELBSecurityPolicy-TLS13-1-2-2021-06",
            defaultActions: forward,
          }
        : { loadBalancerArn: alb.arn, port: 80, protocol: "HTTP", defaultActions: forward },
      { parent: this },
    );

    this.albDnsName = alb.dnsName;
    this.albSecurityGroupId = albSg.id;
    this.targetGroupArn = targetGroup.arn;
    this.host = plan.host ? pulumi.output(plan.host) : alb.dnsName;
    this.registerOutputs({
      host: this.host,
      albDnsName: this.albDnsName,
      albSecurityGroupId: this.albSecurityGroupId,
      targetGroupArn: this.targetGroupArn,
    });
  }
}
