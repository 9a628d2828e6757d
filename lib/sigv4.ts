/**
 * AWS Signature Version 4 for a request without a query string, with node:crypto alone. The AWS
 * SDK's signer would bring the SDK's core with it; the functions sign one kind of request
 * (Secrets Manager's GetSecretValue), and this is all that takes.
 */
import { createHash, createHmac } from "node:crypto";

/** Credentials of an IAM role or user; `sessionToken` is set for temporary credentials (a Lambda role's). */
export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

/** No credentials in the environment: a configuration problem, not a transient one. */
export class MissingCredentialsError extends Error {
  readonly code = "MissingCredentials";

  constructor(message: string) {
    super(message);
    // Set explicitly: the serialized Lambda code calls Error as a function, which ignores `this`.
    this.message = message;
    this.name = "MissingCredentialsError";
  }
}

/**
 * The credentials Lambda puts in every function's environment (AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, from the function's execution role). That is the
 * only source read: the SDK's other providers (container credentials, instance metadata, profile
 * files, SSO) serve containers and machines, and a Lambda function never needs them. Throws,
 * naming the variables, when they are not set.
 */
export function credentialsFromEnv(env: Record<string, string | undefined> = process.env): AwsCredentials {
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) {
    throw new MissingCredentialsError(
      "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for " +
        "temporary credentials); Lambda sets them from the function's role",
    );
  }
  const sessionToken = env.AWS_SESSION_TOKEN || undefined;
  return { accessKeyId, secretAccessKey, sessionToken };
}

export interface SignInput {
  method: string;
  /** The request path, as sent (no query string). */
  path: string;
  /** Every header to sign, `host` included; names in any case. */
  headers: Record<string, string>;
  body: string;
  region: string;
  service: string;
  credentials: AwsCredentials;
  /** The signing time (default now). */
  now?: Date;
}

const sha256Hex = (data: string): string => createHash("sha256").update(data, "utf8").digest("hex");
const hmac = (key: Buffer | string, data: string): Buffer =>
  createHmac("sha256", key).update(data, "utf8").digest();

/** RFC 3986 escaping, as SigV4's canonical URI wants it (encodeURIComponent leaves !'()* alone). */
const escapeRfc3986 = (segment: string): string =>
  encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** `20150830T123600Z`: the x-amz-date form of a time. */
export function amzDate(time: Date): string {
  return time.toISOString().replace(/[:-]|\.\d{3}/g, "");
}

/**
 * The request's headers plus `x-amz-date`, `x-amz-security-token` (for temporary credentials)
 * and `authorization`, all names lower case. Every header passed in is signed.
 */
export function signRequest(input: SignInput): Record<string, string> {
  const date = amzDate(input.now ?? new Date());
  const day = date.slice(0, 8);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(input.headers)) headers[name.toLowerCase()] = value;
  headers["x-amz-date"] = date;
  if (input.credentials.sessionToken) headers["x-amz-security-token"] = input.credentials.sessionToken;

  const names = Object.keys(headers).sort();
  const signedHeaders = names.join(";");
  const canonicalHeaders = names
    .map((name) => `${name}:${headers[name].trim().replace(/\s+/g, " ")}\n`)
    .join("");
  const canonicalPath = input.path.split("/").map(escapeRfc3986).join("/") || "/";
  const canonicalRequest = [
    input.method.toUpperCase(),
    canonicalPath,
    "", // no query string
    canonicalHeaders,
    signedHeaders,
    sha256Hex(input.body),
  ].join("\n");
  const scope = `${day}/${input.region}/${input.service}/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", date, scope, sha256Hex(canonicalRequest)].join("\n");
  const signingKey = hmac(
    hmac(hmac(hmac(`AWS4${input.credentials.secretAccessKey}`, day), input.region), input.service),
    "aws4_request",
  );
  const signature = createHmac("sha256", signingKey).update(stringToSign, "utf8").digest("hex");
  headers.authorization =
    `AWS4-HMAC-SHA256 Credential=${input.credentials.accessKeyId}/${scope}, ` +
    `SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return headers;
}
