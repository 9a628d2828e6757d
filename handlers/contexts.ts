import { z } from "zod";
import { ConfigError } from "../lib/config";
import {
  createContext,
  deleteContext,
  getContext,
  renewContextUpload,
  toContextView,
  type ContextDeps,
} from "../lib/contexts";
import { json, type HttpHandler } from "../lib/http";
import { objectKeys } from "../lib/objects";
import { readJsonBody } from "../lib/schemas";
import {
  authenticateRequest,
  withRequestLimit,
  requestAdmitted,
  checkProjectId,
  tokenKeys,
  type SessionDeps,
} from "../lib/sessions";

/**
 * The context routes need the object store (archives) and a way to make upload URLs: the local
 * stack's endpoint, else the store's presigned PUT. Without either they fail at start-up, naming it.
 */
function contextDeps(deps: SessionDeps): ContextDeps {
  const objects = deps.objects;
  if (!objects) {
    throw new ConfigError("environment variable OBJECT_STORE is required by the context routes but not set");
  }
  const uploadUrl =
    deps.contextUploadUrl ??
    (objects.presignPut
      ? (projectId: string, contextId: string, expiresIn: number) =>
          objects.presignPut!(objectKeys.context(projectId, contextId), expiresIn)
      : undefined);
  return {
    contexts: deps.contexts,
    objects,
    logger: deps.logger,
    now: deps.now,
    tokenKeys: () => tokenKeys(deps),
    uploadUrl:
      uploadUrl ??
      (() =>
        Promise.reject(
          new ConfigError(
            "context uploads need OBJECT_STORE=s3://<bucket> (presigned PUTs) or the local stack's upload endpoint",
          ),
        )),
  };
}

function createContextBodySchema() {
  return z.object({
    projectId: z.string({ error: "must be a string" }).max(128).optional(),
    name: z.string({ error: "must be a string" }).max(200, "must be at most 200 characters").optional(),
  });
}

/** `POST /v1/contexts`: 201 `{id, uploadUrl, publicKey, cipherAlgorithm, initializationVectorSize}`. */
export function createContextHandler(deps: SessionDeps): HttpHandler {
  const ctxDeps = contextDeps(deps);
  const bodySchema = createContextBodySchema();
  return withRequestLimit(deps, async (event) => {
    const principal = await authenticateRequest(event, deps);
    const body = readJsonBody(event, bodySchema, deps.config.maxBodyBytes);
    checkProjectId(principal, body.projectId);
    await requestAdmitted(event);
    const { view } = await createContext(principal, { name: body.name }, ctxDeps);
    return json(201, view);
  });
}

/** `GET /v1/contexts/{id}`: one context of the caller's project. */
export function getContextHandler(deps: SessionDeps): HttpHandler {
  return withRequestLimit(deps, async (event) => {
    const principal = await authenticateRequest(event, deps);
    return json(200, toContextView(await getContext(principal, event.pathParameters?.id ?? "", deps)));
  });
}

/** `PUT /v1/contexts/{id}`: a fresh upload URL (same key pair). */
export function updateContextHandler(deps: SessionDeps): HttpHandler {
  const ctxDeps = contextDeps(deps);
  return withRequestLimit(deps, async (event) => {
    const principal = await authenticateRequest(event, deps);
    return json(200, await renewContextUpload(principal, event.pathParameters?.id ?? "", ctxDeps));
  });
}

/** `DELETE /v1/contexts/{id}`: 204. */
export function deleteContextHandler(deps: SessionDeps): HttpHandler {
  const ctxDeps = contextDeps(deps);
  return withRequestLimit(deps, async (event) => {
    const principal = await authenticateRequest(event, deps);
    await requestAdmitted(event);
    await deleteContext(principal, event.pathParameters?.id ?? "", ctxDeps);
    return { statusCode: 204, headers: { "cache-control": "no-store" }, body: "" };
  });
}
