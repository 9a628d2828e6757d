import { expect } from "chai";
import { RETIRED_TAG } from "../../lib/objects";
import { bucketPolicyDocument, lifecycleRules, Storage } from "../../infra/storage";
import { find, installMocks, promiseOf, settle, T } from "./mocks";

describe("infra/storage", () => {
  describe("bucketPolicyDocument", () => {
    it("denies every request without TLS, on the bucket and its objects", () => {
      const doc = JSON.parse(bucketPolicyDocument("arn:aws:s3:::wc-objects"));
      expect(doc.Statement).to.have.length(1);
      expect(doc.Statement[0]).to.deep.include({
        Effect: "Deny",
        Principal: "*",
        Action: "s3:*",
        Resource: ["arn:aws:s3:::wc-objects", "arn:aws:s3:::wc-objects/*"],
        Condition: { Bool: { "aws:SecureTransport": "false" } },
      });
      expect(() => bucketPolicyDocument("*")).to.throw(/not an S3 bucket ARN/);
    });
  });

  describe("lifecycleRules", () => {
    it("expires retired objects after the given days and cleans up abandoned uploads", () => {
      const [retired, uploads] = lifecycleRules(3);
      expect(retired).to.deep.include({
        status: "Enabled",
        filter: { tag: { key: RETIRED_TAG.key, value: RETIRED_TAG.value } },
        expiration: { days: 3 },
      });
      expect(uploads.abortIncompleteMultipartUpload).to.deep.equal({ daysAfterInitiation: 1 });
      expect(() => lifecycleRules(0)).to.throw(/retiredObjectDays/);
    });
  });

  describe("the Storage component", function () {
    this.timeout(30000);
    let storage: Storage;

    before(async () => {
      await installMocks();
      storage = new Storage("t-store");
      await promiseOf(storage.bucketArn);
      await settle();
    });

    it("makes a private bucket: public access blocked, owner-enforced, encrypted, TLS only", async () => {
      const name = await promiseOf(storage.bucketName);
      expect(await promiseOf(storage.bucketArn)).to.equal(`arn:aws:s3:::${name}`);
      expect(find(T.bucket, "t-store-bucket").inputs.forceDestroy).to.equal(false);
      expect(find(T.publicAccessBlock, "t-store-public-access").inputs).to.deep.include({
        bucket: name,
        blockPublicAcls: true,
        blockPublicPolicy: true,
        ignorePublicAcls: true,
        restrictPublicBuckets: true,
      });
      expect(find(T.ownership, "t-store-ownership").inputs.rule).to.deep.equal({
        objectOwnership: "BucketOwnerEnforced",
      });
      const encryption = find(T.encryption, "t-store-encryption").inputs.rules[0];
      expect(encryption.applyServerSideEncryptionByDefault.sseAlgorithm).to.equal("AES256");
      const policy = JSON.parse(find(T.bucketPolicy, "t-store-policy").inputs.policy);
      expect(policy.Statement[0].Condition).to.deep.equal({ Bool: { "aws:SecureTransport": "false" } });
      const rules = find(T.lifecycle, "t-store-lifecycle").inputs.rules;
      expect(rules.map((rule: { id: string }) => rule.id)).to.include("expire-retired-objects");
    });
  });
});
