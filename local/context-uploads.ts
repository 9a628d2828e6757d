import type { IncomingMessage, ServerResponse } from "node:http";
import { archiveFramingProblem, MAX_CONTEXT_ARCHIVE_BYTES, type ContextUploadUrl } from "../lib/contexts";
import { describeCause } from "../lib/http";
import { objectKeys } from "../lib/objects";
import type { Runtime } from "../lib/runtime";
import { tokenKeys } from "../lib/sessions";
import { mintSessionToken, readSessionToken, TokenError } from "../lib/tokens";

/** `PUT /v1/contexts/<id>/archive`: the local stand-in for a presigned S3 PUT. */
export const CONTEXT_ARCHIVE_PATH = /^\/v1\/contexts\/([^/]+)\/archive$/;

/**
 * Upload URLs of the local stack: its own endpoint, with an `upload`-scoped token (a JWE under the
 * token key set, `sub` = the context id) that expires like a presigned URL would.
 */
export function localContextUploadUrl(runtime: Runtime, baseUrl: () => string): ContextUploadUrl {
  return async (projectId, contextId, expiresInSeconds) => {
    const now = Math.floor(runtime.now() / 1000);
    const token = await mintSessionToken(
      await tokenKeys(runtime),
      {
        sessionId: contextId,
        projectId,
        principalId: "context-upload",
        scope: "upload",
        expiresAt: now + expiresInSeconds,
        now,
      },
      { issuer: runtime.config.tokenIssuer, audience: runtime.config.tokenAudience },
    );
    return `${baseUrl()}/v1/contexts/${contextId}/archive?token=${token}`;
  };
}

function answer(res: ServerResponse, statusCode: number, message?: string): void {
  if (res.headersSent) return;
  res.writeHead(statusCode, { "content-type": "application/json", connection: "close" });
  res.end(message === undefined ? "" : JSON.stringify({ statusCode, message }));
}

/** The client closed the connection before the whole body arrived. */
class UploadAborted extends Error {}

/** Reads the body up to `limit` bytes; undefined (and the rest discarded) when it is larger. */
function readLimited(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > limit) {
      req.resume();
      resolve(undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) over = true;
      if (!over) chunks.push(chunk);
    });
    let ended = false;
    req.on("end", () => {
      ended = true;
      resolve(over ? undefined : Buffer.concat(chunks));
    });
    req.on("error", reject);
    // A client that goes away mid-body: nothing was complete, so nothing is stored.
    req.on("close", () => {
      if (!ended) reject(new UploadAborted());
    });
  });
}

/**
 * Takes an uploaded context archive: checks the token (scope `upload`, this context), the size
 * and the framing, then writes the archive in one atomic step (temp file and rename), so a cut
 * or refused upload never replaces the context's profile.
 */
export async function handleContextArchiveUpload(
  runtime: Runtime,
  req: IncomingMessage,
  res: ServerResponse,
  contextId: string,
): Promise<void> {
  // Start reading at once: a client that leaves while the token is checked is still noticed.
  const body = readLimited(req, MAX_CONTEXT_ARCHIVE_BYTES);
  body.catch(() => undefined);
  try {
    const token = new URL(req.url ?? "/", "http://localhost").searchParams.get("token") ?? "";
    let claims;
    try {
      ({ claims } = await readSessionToken(token, await tokenKeys(runtime), {
        sessionId: contextId,
        scope: "upload",
        issuer: runtime.config.tokenIssuer,
        audience: runtime.config.tokenAudience,
      }).then((read) => {
        if (read.expired)
          throw new TokenError(
            "expired",
            "the upload URL has expired: get a new one with PUT /v1/contexts/{id}",
          );
        return read;
      }));
    } catch (error) {
      if (error instanceof TokenError) return answer(res, 403, `upload refused: ${error.message}`);
      throw error;
    }
    const data = await body;
    if (data === undefined) {
      return answer(
        res,
        413,
        `a context archive may be at most ${MAX_CONTEXT_ARCHIVE_BYTES} bytes; nothing was stored`,
      );
    }
    const problem = archiveFramingProblem(data);
    if (problem) return answer(res, 400, `not a context archive: ${problem}; nothing was stored`);
    if (!(await runtime.contexts.get(claims.projectId, contextId))) {
      return answer(res, 404, `context ${contextId} not found`);
    }
    await runtime.objects!.put(
      objectKeys.context(claims.projectId, contextId),
      data,
      "application/octet-stream",
    );
    await runtime.contexts.archiveWritten(claims.projectId, contextId, runtime.now());
    runtime.logger.info("context archive uploaded", {
      contextId,
      projectId: claims.projectId,
      bytes: data.length,
    });
    answer(res, 200);
  } catch (error) {
    if (error instanceof UploadAborted || (error as NodeJS.ErrnoException).code === "ECONNRESET") {
      runtime.logger.info("context upload cut short; nothing was stored", { contextId });
      return;
    }
    runtime.logger.error("context upload failed", { contextId, cause: describeCause(error) });
    answer(res, 503, "the upload could not be stored; retry");
  }
}
