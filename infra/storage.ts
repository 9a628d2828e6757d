import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { RETIRED_OBJECT_DAYS, RETIRED_TAG } from "../lib/objects";

/** Prefixes of the object store, one per kind (the key layout is in lib/objects.ts). */
export const OBJECT_PREFIXES = ["extensions/", "contexts/", "sessions/"] as const;

export interface StorageArgs {
  /** Delete the bucket with `pulumi destroy` even when it holds objects; default false. */
  forceDestroy?: boolean;
  /** Days a retired (deleted through the API) object is kept before S3 removes it; default 1. */
  retiredObjectDays?: number;
}

/**
 * The bucket policy: refuse every request that does not use TLS. Block Public Access and the
 * functions' IAM policy do the rest.
 */
export function bucketPolicyDocument(bucketArn: string): string {
  if (!/^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$/.test(bucketArn)) {
    throw new Error(`storage: "${bucketArn}" is not an S3 bucket ARN`);
  }
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "DenyInsecureTransport",
        Effect: "Deny",
        Principal: "*",
        Action: "s3:*",
        Resource: [bucketArn, `${bucketArn}/*`],
        Condition: { Bool: { "aws:SecureTransport": "false" } },
      },
    ],
  });
}

/** The lifecycle rules: retired objects expire, and abandoned multipart uploads are cleaned up. */
export function lifecycleRules(
  retiredObjectDays: number,
): aws.types.input.s3.BucketLifecycleConfigurationRule[] {
  if (!Number.isInteger(retiredObjectDays) || retiredObjectDays < 1 || retiredObjectDays > 3650) {
    throw new Error(`storage: retiredObjectDays must be whole days from 1 to 3650, got ${retiredObjectDays}`);
  }
  return [
    {
      id: "expire-retired-objects",
      status: "Enabled",
      filter: { tag: { key: RETIRED_TAG.key, value: RETIRED_TAG.value } },
      expiration: { days: retiredObjectDays },
    },
    {
      id: "abort-incomplete-uploads",
      status: "Enabled",
      filter: {},
      abortIncompleteMultipartUpload: { daysAfterInitiation: 1 },
    },
  ];
}

/**
 * The object store: one private S3 bucket (Block Public Access on, SSE-S3 encryption, bucket
 * owner owns every object, TLS-only policy, lifecycle rule for deleted objects). Extensions,
 * and later context archives and session files, live under one prefix per kind.
 */
export class Storage extends pulumi.ComponentResource {
  public readonly bucketName: pulumi.Output<string>;
  public readonly bucketArn: pulumi.Output<string>;

  constructor(name: string, args: StorageArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    super("wallcrawler:infra:Storage", name, {}, opts);
    const rules = lifecycleRules(args.retiredObjectDays ?? RETIRED_OBJECT_DAYS);

    const bucket = new aws.s3.Bucket(
      `${name}-bucket`,
      { forceDestroy: args.forceDestroy ?? false },
      { parent: this },
    );
    const publicAccess = new aws.s3.BucketPublicAccessBlock(
      `${name}-public-access`,
      {
        bucket: bucket.id,
        blockPublicAcls: true,
        blockPublicPolicy: true,
        ignorePublicAcls: true,
        restrictPublicBuckets: true,
      },
      { parent: this },
    );
    new aws.s3.BucketOwnershipControls(
      `${name}-ownership`,
      { bucket: bucket.id, rule: { objectOwnership: "BucketOwnerEnforced" } },
      { parent: this },
    );
    new aws.s3.BucketServerSideEncryptionConfiguration(
      `${name}-encryption`,
      {
        bucket: bucket.id,
        rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" }, bucketKeyEnabled: true }],
      },
      { parent: this },
    );
    new aws.s3.BucketLifecycleConfiguration(
      `${name}-lifecycle`,
      { bucket: bucket.id, rules },
      { parent: this },
    );
    new aws.s3.BucketPolicy(
      `${name}-policy`,
      { bucket: bucket.id, policy: bucket.arn.apply(bucketPolicyDocument) },
      // S3 refuses a bucket policy until Block Public Access is settled.
      { parent: this, dependsOn: [publicAccess] },
    );

    this.bucketName = bucket.bucket;
    this.bucketArn = bucket.arn;
    this.registerOutputs({ bucketName: this.bucketName, bucketArn: this.bucketArn });
  }
}
