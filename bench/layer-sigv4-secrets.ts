/**
 * A minimal Secrets Manager `GetSecretValue` over SigV4 with node:crypto and node:https, no SDK:
 * the candidate that bench/layer-coldstart.ts compares with the AWS SDK client and with the
 * Parameters and Secrets Lambda extension. Credentials and region come from the environment
 * Lambda sets (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION);
 * AWS_ENDPOINT_URL_SECRETS_MANAGER overrides the endpoint, as it does for the SDK.
 */
import { createHash, createHmac } from "node:crypto";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

const sha256 = (data: string) => createHash("sha256").update(data, "utf8").digest("hex");
const hmac = (key: Buffer | string, data: string) => createHmac("sha256", key).update(data, "utf8").digest();

/** The SigV4 `Authorization` and `x-amz-date` headers of one POST with a JSON body. */
export function signRequest(options: {
  host: string;
  region: string;
  service: string;
  target: string;
  body: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  now?: Date;
}): Record<string, string> {
  const amzDate = (options.now ?? new Date()).toISOString().replace(/[:-]|\.\d{3}/g, "");
  const day = amzDate.slice(0, 8);
  const headers: Record<string, string> = {
    "content-type": "application/x-amz-json-1.1",
    host: options.host,
    "x-amz-date": amzDate,
    "x-amz-target": options.target,
  };
  if (options.sessionToken) headers["x-amz-security-token"] = options.sessionToken;
  const names = Object.keys(headers).sort();
  const canonical = [
    "POST",
    "/",
    "",
    names.map((name) => `${name}:${headers[name]}\n`).join(""),
    names.join(";"),
    sha256(options.body),
  ].join("\n");
  const scope = `${day}/${options.region}/${options.service}/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256(canonical)].join("\n");
  const key = hmac(
    hmac(hmac(hmac(`AWS4${options.secretAccessKey}`, day), options.region), options.service),
    "aws4_request",
  );
  const signature = createHmac("sha256", key).update(toSign, "utf8").digest("hex");
  return {
    ...headers,
    authorization: `AWS4-HMAC-SHA256 Credential=${options.accessKeyId}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}`,
  };
}

/** GetSecretValue: the secret's string value. */
export function getSecretValue(secretId: string, env = process.env): Promise<string> {
  const region = env.AWS_REGION ?? "us-east-1";
  const endpoint = new URL(
    env.AWS_ENDPOINT_URL_SECRETS_MANAGER ?? `https://secretsmanager.${region}.amazonaws.com`,
  );
  const body = JSON.stringify({ SecretId: secretId });
  const headers = signRequest({
    host: endpoint.host,
    region,
    service: "secretsmanager",
    target: "secretsmanager.GetSecretValue",
    body,
    accessKeyId: env.AWS_ACCESS_KEY_ID ?? "",
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY ?? "",
    sessionToken: env.AWS_SESSION_TOKEN,
  });
  const request = endpoint.protocol === "http:" ? httpRequest : httpsRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      endpoint,
      {
        method: "POST",
        headers: { ...headers, "content-length": String(Buffer.byteLength(body)) },
        timeout: 1000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (res.statusCode !== 200) return reject(new Error(`GetSecretValue: HTTP ${res.statusCode}`));
          const out = JSON.parse(text) as { SecretString?: string };
          if (typeof out.SecretString !== "string")
            return reject(new Error(`secret ${secretId} has no string value`));
          resolve(out.SecretString);
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("GetSecretValue: timed out")));
    req.on("error", reject);
    req.end(body);
  });
}
