/**
 * The AWS SDK's own SigV4 signer (@smithy/signature-v4, installed with the SDK clients), as an
 * independent reference for lib/sigv4.ts: tests and the fake Secrets Manager check signatures with it.
 */
import { createHash, createHmac } from "node:crypto";
import { SignatureV4 } from "@smithy/signature-v4";

/** node:crypto behind the hash interface the SDK's signer takes. */
type SourceData = string | ArrayBuffer | ArrayBufferView;

function bytes(data: SourceData): string | Buffer {
  if (typeof data === "string") return data;
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

class NodeSha256 {
  private readonly hash: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash("sha256") : createHmac("sha256", bytes(secret));
  }
  update(data: SourceData): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}

/** The Authorization header the AWS SDK's own signer (@smithy/signature-v4) computes for a request. */
export async function sdkAuthorization(request: {
  host: string;
  path: string;
  headers: Record<string, string>;
  body: string;
  region: string;
  service: string;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  date: Date;
}): Promise<string> {
  const signer = new SignatureV4({
    credentials: request.credentials,
    region: request.region,
    service: request.service,
    sha256: NodeSha256,
    // Otherwise it adds and signs an x-amz-content-sha256 header the request does not carry.
    applyChecksum: false,
  });
  const [hostname, port] = request.host.split(":");
  const signed = await signer.sign(
    {
      method: "POST",
      protocol: "http:",
      hostname,
      port: port ? Number(port) : undefined,
      path: request.path,
      query: {},
      headers: { ...request.headers },
      body: request.body,
    },
    { signingDate: request.date },
  );
  return signed.headers.authorization;
}
