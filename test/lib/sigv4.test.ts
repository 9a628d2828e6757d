import { expect } from "chai";
import { amzDate, credentialsFromEnv, MissingCredentialsError, signRequest } from "../../lib/sigv4";
import { sdkAuthorization } from "../support/sdk-signer";

/** The example credentials of AWS's Signature Version 4 documentation and test suite (not a real key). */
const EXAMPLE = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" };

describe("sigv4", () => {
  describe("signRequest", () => {
    it("matches AWS's published get-vanilla and post-vanilla test vectors", () => {
      const sign = (method: string) =>
        signRequest({
          method,
          path: "/",
          headers: { Host: "example.amazonaws.com" },
          body: "",
          region: "us-east-1",
          service: "service",
          credentials: EXAMPLE,
          now: new Date("2015-08-30T12:36:00Z"),
        });
      const scope = "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
      expect(sign("GET").authorization).to.equal(
        `AWS4-HMAC-SHA256 ${scope}, SignedHeaders=host;x-amz-date, ` +
          "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
      );
      expect(sign("POST").authorization).to.equal(
        `AWS4-HMAC-SHA256 ${scope}, SignedHeaders=host;x-amz-date, ` +
          "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
      );
    });

    it("signs a GetSecretValue call exactly as the AWS SDK's signer does, session token included", async () => {
      const date = new Date("2026-01-02T03:04:05.678Z");
      const credentials = { ...EXAMPLE, sessionToken: "FAKE-session/token+for==tests" };
      const request = {
        host: "secretsmanager.us-west-2.amazonaws.com",
        path: "/",
        headers: {
          host: "secretsmanager.us-west-2.amazonaws.com",
          "content-type": "application/x-amz-json-1.1",
          "x-amz-target": "secretsmanager.GetSecretValue",
        },
        body: JSON.stringify({ SecretId: "arn:aws:secretsmanager:us-west-2:123456789012:secret:x-AbCdEf" }),
        region: "us-west-2",
        service: "secretsmanager",
        credentials,
      };
      const headers = signRequest({ ...request, method: "POST", now: date });
      expect(headers["x-amz-date"]).to.equal("20260102T030405Z");
      expect(headers["x-amz-security-token"]).to.equal(credentials.sessionToken);
      expect(headers.authorization).to.match(
        /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/20260102\/us-west-2\/secretsmanager\/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=[0-9a-f]{64}$/,
      );
      expect(headers.authorization).to.equal(await sdkAuthorization({ ...request, date }));
    });

    it("gives a different signature for another secret key, body or day", () => {
      const base = {
        method: "POST",
        path: "/",
        headers: { host: "h" },
        body: "{}",
        region: "us-west-2",
        service: "secretsmanager",
        credentials: EXAMPLE,
        now: new Date("2026-01-02T00:00:00Z"),
      };
      const signature = (input: typeof base) => signRequest(input).authorization.split("Signature=")[1];
      const reference = signature(base);
      expect(signature({ ...base, credentials: { ...EXAMPLE, secretAccessKey: "other" } })).to.not.equal(
        reference,
      );
      expect(signature({ ...base, body: '{"a":1}' })).to.not.equal(reference);
      expect(signature({ ...base, now: new Date("2026-01-03T00:00:00Z") })).to.not.equal(reference);
    });

    it("leaves the session token header out for long-term credentials", () => {
      const headers = signRequest({
        method: "POST",
        path: "/",
        headers: { host: "h" },
        body: "",
        region: "us-west-2",
        service: "secretsmanager",
        credentials: EXAMPLE,
      });
      expect(headers).to.not.have.property("x-amz-security-token");
      expect(headers.authorization).to.include("SignedHeaders=host;x-amz-date,");
    });
  });

  describe("amzDate", () => {
    it("is the basic ISO 8601 form without milliseconds", () => {
      expect(amzDate(new Date("2015-08-30T12:36:00.999Z"))).to.equal("20150830T123600Z");
    });
  });

  describe("credentialsFromEnv", () => {
    it("reads the variables Lambda sets", () => {
      expect(
        credentialsFromEnv({
          AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
          AWS_SECRET_ACCESS_KEY: "fake-secret",
          AWS_SESSION_TOKEN: "fake-token",
        }),
      ).to.deep.equal({
        accessKeyId: "AKIDEXAMPLE",
        secretAccessKey: "fake-secret",
        sessionToken: "fake-token",
      });
      expect(
        credentialsFromEnv({ AWS_ACCESS_KEY_ID: "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY: "fake-secret" })
          .sessionToken,
      ).to.equal(undefined);
    });

    it("throws naming the variables when the credentials are missing", () => {
      for (const env of [
        {},
        { AWS_ACCESS_KEY_ID: "AKIDEXAMPLE" },
        { AWS_SECRET_ACCESS_KEY: "fake-secret" },
      ]) {
        expect(() => credentialsFromEnv(env))
          .to.throw(MissingCredentialsError)
          .with.property("message")
          .that.includes("AWS_ACCESS_KEY_ID")
          .and.includes("AWS_SECRET_ACCESS_KEY");
      }
    });
  });
});
