import { createCipheriv, randomBytes, randomUUID } from "node:crypto";
import { expect } from "chai";
import { admitConnection, type AdmissionRequest } from "../../lib/admission";
import type { SessionRecord } from "../../lib/session";
import { mintSessionToken, rotateTokenKeySet, verifySessionToken, type TokenKeySet } from "../../lib/tokens";

const OPTIONS = { issuer: "wallcrawler-api", audience: "wallcrawler-proxy" };
const NOW = Date.UTC(2026, 11, 2, 12, 0, 0);

function record(overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id: randomUUID(),
    projectId: "acme",
    principalId: "prn_a",
    status: "RUNNING",
    createdAt: NOW - 60_000,
    updatedAt: NOW - 60_000,
    startedAt: NOW - 60_000,
    expiresAt: NOW + 240_000,
    timeoutSeconds: 300,
    keepAlive: false,
    region: "us-west-2",
    proxyBytes: 0,
    ...overrides,
  };
}

/** A token with any protected header and payload, encrypted exactly as the API's tokens are. */
function craftToken(
  set: TokenKeySet,
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
): string {
  const encodedHeader = Buffer.from(JSON.stringify(header)).toString("base64url");
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", Buffer.from(set.keys[set.current], "base64url"), iv);
  cipher.setAAD(Buffer.from(encodedHeader, "ascii"));
  const ciphertext = Buffer.concat([cipher.update(JSON.stringify(payload), "utf8"), cipher.final()]);
  return `${encodedHeader}..${iv.toString("base64url")}.${ciphertext.toString("base64url")}.${cipher.getAuthTag().toString("base64url")}`;
}

describe("lib/admission: the Proxy's admission rule", () => {
  const keySet = rotateTokenKeySet(undefined, "k1");
  const mint = (
    session: SessionRecord,
    expiresAtSeconds = session.expiresAt / 1000,
    nowSeconds = NOW / 1000 - 60,
  ) =>
    mintSessionToken(
      keySet,
      {
        sessionId: session.id,
        projectId: session.projectId,
        principalId: session.principalId,
        scope: "connect",
        expiresAt: expiresAtSeconds,
        now: nowSeconds,
      },
      OPTIONS,
    );
  const request = (
    session: SessionRecord | undefined,
    token: string | undefined,
    now = NOW,
  ): AdmissionRequest => ({
    ...OPTIONS,
    sessionId: session?.id ?? randomUUID(),
    token,
    keySet,
    now,
    getRecord: async (projectId, id) =>
      session && session.projectId === projectId && session.id === id ? session : undefined,
  });

  it("admits a genuine token for a running session, with its claims and record", async () => {
    const session = record();
    const decision = await admitConnection(request(session, await mint(session)));
    expect(decision.admit).to.equal(true);
    if (decision.admit) {
      expect(decision.claims.projectId).to.equal("acme");
      expect(decision.record.id).to.equal(session.id);
    }
  });

  it("refuses a missing token, a token for another session and an unknown session", async () => {
    const session = record();
    expect(await admitConnection(request(session, undefined))).to.deep.include({
      status: 401,
      reason: "missing_token",
    });
    const other = record();
    expect(await admitConnection(request(session, await mint(other)))).to.deep.include({
      status: 401,
      reason: "token_wrong_session",
    });
    const gone = record();
    const decision = await admitConnection({ ...request(undefined, await mint(gone)), sessionId: gone.id });
    expect(decision).to.deep.include({ status: 404, reason: "unknown_session" });
  });

  it("answers 410 for an ended session, even when its token has expired too (no extended tolerance)", async () => {
    const released = record({ status: "COMPLETED", endedAt: NOW - 10_000 });
    const expiredLongAgo = record({ expiresAt: NOW - 3 * 86_400_000 });
    for (const session of [released, expiredLongAgo]) {
      const token = await mint(session, session.expiresAt / 1000, session.createdAt / 1000 - 3 * 86_400);
      const decision = await admitConnection(request(session, token));
      expect(decision).to.deep.include({ status: 410, reason: "session_ended" });
    }
  });

  it("refuses an expired token for a running session with 401 beyond the 5 s skew, and accepts it within", async () => {
    const session = record();
    const token = await mint(session, NOW / 1000 - 6);
    expect(await admitConnection(request(session, token))).to.deep.include({
      status: 401,
      reason: "token_expired",
    });
    const justNow = await mint(session, NOW / 1000 - 4);
    expect((await admitConnection(request(session, justNow))).admit).to.equal(true);
  });

  it("refuses a token that is not valid yet beyond the 5 s skew", async () => {
    const session = record();
    const early = await mint(session, session.expiresAt / 1000, NOW / 1000 + 60);
    expect(await admitConnection(request(session, early))).to.deep.include({
      status: 401,
      reason: "token_not_yet_valid",
    });
  });

  it("refuses a connect token whose exp is later than the session's expiresAt", async () => {
    const session = record();
    const outliving = await mint(session, session.expiresAt / 1000 + 3600);
    expect(await admitConnection(request(session, outliving))).to.deep.include({
      status: 401,
      reason: "token_outlives_session",
    });
  });

  it("refuses a genuine token whose protected header has a field the API never mints (zip, cty) or another typ", async () => {
    const session = record();
    const payload = {
      projectId: "acme",
      principalId: "prn_a",
      scope: "connect",
      iss: OPTIONS.issuer,
      aud: OPTIONS.audience,
      sub: session.id,
      jti: randomUUID(),
      iat: NOW / 1000 - 60,
      nbf: NOW / 1000 - 60,
      exp: session.expiresAt / 1000,
    };
    const base = { alg: "dir", enc: "A256GCM", kid: "k1", typ: "JWT" };
    // The same header as minted is admitted, so the refusals below are about the header alone.
    expect((await admitConnection(request(session, craftToken(keySet, base, payload)))).admit).to.equal(true);
    for (const header of [
      { ...base, zip: "DEF" },
      { ...base, cty: "JWT" },
      { ...base, typ: "JOSE" },
      { alg: "dir", enc: "A256GCM", kid: "k1" },
    ]) {
      const decision = await admitConnection(request(session, craftToken(keySet, header, payload)));
      expect(decision, JSON.stringify(header)).to.deep.include({ status: 401, reason: "token_malformed" });
    }
    // The verifier the Proxy may call directly refuses it too.
    const zipped = craftToken(keySet, { ...base, zip: "DEF" }, payload);
    const error = await verifySessionToken(zipped, keySet, {
      ...OPTIONS,
      sessionId: session.id,
      now: NOW / 1000,
    }).catch((e: Error) => e);
    expect((error as Error).message).to.match(/never mints: zip/);
  });

  it("lets a Redis failure through to the caller (a 503 there), never an admit", async () => {
    const session = record();
    const failing: AdmissionRequest = {
      ...request(session, await mint(session)),
      getRecord: async () => {
        throw Object.assign(new Error("Redis is unavailable"), { statusCode: 503 });
      },
    };
    const outcome = await admitConnection(failing).catch((e: { statusCode: number }) => e);
    expect(outcome).to.have.property("statusCode", 503);
  });
});
