import { ConfigError } from "../lib/config";
import {
  createExtension,
  deleteExtension,
  extensionLimits,
  getExtension,
  toExtensionView,
  type ExtensionDeps,
} from "../lib/extensions";
import { json, type HttpHandler } from "../lib/http";
import { bodyBytes, readMultipartFile } from "../lib/multipart";
import { PayloadTooLargeError } from "../lib/errors";
import { authenticateRequest, requestAdmitted, withRequestLimit, type SessionDeps } from "../lib/sessions";

/** Multipart framing around the file: boundaries, part headers, a few small fields. */
const MULTIPART_OVERHEAD_BYTES = 64 * 1024;

/** The extension routes need the object store: without OBJECT_STORE they fail at start-up, naming it. */
function extensionDeps(deps: SessionDeps): ExtensionDeps {
  if (!deps.objects) {
    throw new ConfigError(
      "environment variable OBJECT_STORE is required by the extension routes but not set",
    );
  }
  return { extensions: deps.extensions, objects: deps.objects, logger: deps.logger, now: deps.now };
}

/** `POST /v1/extensions`: upload a .zip of an unpacked Chrome extension (multipart, part `file`). */
export function createExtensionHandler(deps: SessionDeps): HttpHandler {
  const extDeps = extensionDeps(deps);
  const limits = extensionLimits(extDeps);
  return withRequestLimit(deps, async (event) => {
    const principal = await authenticateRequest(event, deps);
    const size = bodyBytes(event).length;
    if (size > limits.maxArchiveBytes + MULTIPART_OVERHEAD_BYTES) {
      throw new PayloadTooLargeError(
        `request body is ${size} bytes; an extension archive may be at most ${limits.maxArchiveBytes} bytes`,
      );
    }
    const file = await readMultipartFile(event, "file", limits.maxArchiveBytes);
    await requestAdmitted(event);
    const record = await createExtension(principal, file, extDeps);
    return json(201, toExtensionView(record));
  });
}

/** `GET /v1/extensions/{id}`: one extension of the caller's project. */
export function getExtensionHandler(deps: SessionDeps): HttpHandler {
  return withRequestLimit(deps, async (event) => {
    const principal = await authenticateRequest(event, deps);
    const record = await getExtension(principal, event.pathParameters?.id ?? "", deps);
    return json(200, toExtensionView(record));
  });
}

/** `DELETE /v1/extensions/{id}`: 204; sessions already created with it keep it. */
export function deleteExtensionHandler(deps: SessionDeps): HttpHandler {
  const extDeps = extensionDeps(deps);
  return withRequestLimit(deps, async (event) => {
    const principal = await authenticateRequest(event, deps);
    await requestAdmitted(event);
    await deleteExtension(principal, event.pathParameters?.id ?? "", extDeps);
    return { statusCode: 204, headers: { "cache-control": "no-store" }, body: "" };
  });
}
