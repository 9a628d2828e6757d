import { ConfigError } from "../lib/config";
import { PayloadTooLargeError } from "../lib/errors";
import { json, type HttpHandler, type HttpResult } from "../lib/http";
import { bodyBytes, readMultipartFile } from "../lib/multipart";
import {
  downloadsZip,
  SESSION_FILE_LIMITS,
  uploadSessionFile,
  type SessionFileStore,
} from "../lib/session-files";
import {
  authenticateRequest,
  requestAdmitted,
  withRequestLimit,
  getSessionRecord,
  type SessionDeps,
} from "../lib/sessions";

/** Multipart framing around the file: boundaries, part headers, a few small fields. */
const MULTIPART_OVERHEAD_BYTES = 64 * 1024;
/** A Lambda response is at most 6 MB and binary bodies travel base64-encoded: larger zips are fetched from S3. */
const INLINE_ZIP_BYTES = 4 * 1024 * 1024;
/** How long the presigned URL of a large downloads zip works. */
const ZIP_URL_SECONDS = 300;

function fileStore(deps: SessionDeps): SessionFileStore {
  if (!deps.sessionFiles) {
    throw new ConfigError(
      "environment variable OBJECT_STORE is required by the session file routes but not set",
    );
  }
  return deps.sessionFiles;
}

/** `POST /v1/sessions/{id}/uploads`: a multipart `file` the session's browser can pick (200 `{message}`). */
export function uploadSessionFileHandler(deps: SessionDeps): HttpHandler {
  const files = fileStore(deps);
  return withRequestLimit(deps, async (event) => {
    const principal = await authenticateRequest(event, deps);
    const record = await getSessionRecord(principal, event.pathParameters?.id ?? "", deps);
    const size = bodyBytes(event).length;
    if (size > SESSION_FILE_LIMITS.uploadBytes + MULTIPART_OVERHEAD_BYTES) {
      throw new PayloadTooLargeError(
        `request body is ${size} bytes; an upload may be at most ${SESSION_FILE_LIMITS.uploadBytes} bytes`,
      );
    }
    const file = await readMultipartFile(event, "file", SESSION_FILE_LIMITS.uploadBytes);
    await requestAdmitted(event);
    const name = await uploadSessionFile(record, file, {
      files,
      logger: deps.logger,
      now: deps.now,
      retentionMs: deps.config.retentionSeconds * 1000,
    });
    return json(200, {
      message: `File uploaded successfully: it is at /tmp/.uploads/${name} for the session's browser`,
    });
  });
}

/**
 * `GET /v1/sessions/{id}/downloads`: a zip of the files the session's browser downloaded
 * (`application/zip`); an empty body when there are none yet, as Browserbase answers, so a client
 * polls until the body is not empty. A zip too large for a Lambda response is a 303 to a
 * short-lived S3 URL.
 */
export function sessionDownloadsHandler(deps: SessionDeps): HttpHandler {
  const files = fileStore(deps);
  return withRequestLimit(deps, async (event): Promise<HttpResult> => {
    const principal = await authenticateRequest(event, deps);
    const record = await getSessionRecord(principal, event.pathParameters?.id ?? "", deps);
    const zip = await downloadsZip(record, files);
    const objects = files.objectStore;
    if (zip.length > INLINE_ZIP_BYTES && objects.presignGet) {
      const key = `sessions/${record.projectId}/${record.id}/downloads.zip`;
      await requestAdmitted(event);
      await objects.put(key, zip, "application/zip");
      return {
        statusCode: 303,
        headers: { location: await objects.presignGet(key, ZIP_URL_SECONDS), "cache-control": "no-store" },
        body: "",
      };
    }
    return {
      statusCode: 200,
      headers: {
        "content-type": "application/zip",
        "content-disposition": `attachment; filename="${record.id}-downloads.zip"`,
        "cache-control": "no-store",
      },
      body: zip.toString("base64"),
      isBase64Encoded: true,
    };
  });
}

/** `GET /v1/sessions/{id}/logs`: the CDP calls the session's clients made, oldest first (SessionLog[]). */
export function sessionLogsHandler(deps: SessionDeps): HttpHandler {
  const files = fileStore(deps);
  return withRequestLimit(deps, async (event) => {
    const principal = await authenticateRequest(event, deps);
    const record = await getSessionRecord(principal, event.pathParameters?.id ?? "", deps);
    return json(200, await files.logs(record.projectId, record.id));
  });
}
