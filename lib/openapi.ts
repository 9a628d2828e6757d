import { z } from "zod";
import {
  createdSessionSchema,
  createSessionBodySchema,
  retrievedSessionSchema,
  errorBodySchema,
  sessionSchema,
  updateSessionBodySchema,
} from "./schemas";
import { MAX_EXTENSION_ARCHIVE_BYTES } from "./archive";
import { SESSION_FILE_LIMITS, UPLOADS_BROWSER_DIR } from "./session-files";
import { SESSION_STATUSES } from "./session";
import { LIST_PAGE_LIMIT, LIST_SCAN_LIMIT } from "./sessions";

const jsonSchema = (schema: z.ZodType, io: "input" | "output") =>
  z.toJSONSchema(schema, { target: "draft-2020-12", io, unrepresentable: "any" }) as Record<string, unknown>;

function withoutDialect(schema: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = schema;
  return rest;
}

const errorResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
});

/**
 * The OpenAPI 3.1 document of the public API, generated from the same zod schemas the handlers
 * validate with (so it cannot drift from what they accept).
 */
export function buildOpenApiDocument(version: string): Record<string, unknown> {
  const sessionId = {
    name: "id",
    in: "path",
    required: true,
    schema: { type: "string", format: "uuid" },
    description: "Session id",
  };
  const extensionId = { ...sessionId, description: "Extension id" };
  const contextId = { ...sessionId, description: "Context id" };
  const projectId = {
    ...sessionId,
    schema: { type: "string" },
    description: "Project id (the API key's own)",
  };
  const json = (ref: string, description: string) => ({
    description,
    content: { "application/json": { schema: { $ref: `#/components/schemas/${ref}` } } },
  });
  const common = {
    "401": errorResponse("Missing, malformed or unknown API key"),
    "503": errorResponse("A dependency (Redis, Secrets Manager) is unavailable; safe to retry"),
  };
  return {
    openapi: "3.1.0",
    info: {
      title: "WallCrawler API",
      version,
      description:
        "Self-hosted remote browser sessions, compatible with the Browserbase v1 Sessions (with uploads, downloads and logs), Extensions, Projects and Contexts APIs. " +
        "Authenticate with the X-BB-API-Key header (x-api-key is also accepted).",
    },
    security: [{ apiKey: [] }],
    paths: {
      "/v1/sessions": {
        post: {
          operationId: "createSession",
          summary: "Create a browser session",
          parameters: [
            {
              name: "Idempotency-Key",
              in: "header",
              required: false,
              schema: { type: "string", minLength: 1, maxLength: 255 },
              description:
                "Makes the create safe to retry for 24 h: the same key and body return the first session.",
            },
            {
              name: "Prefer",
              in: "header",
              required: false,
              schema: { type: "string", example: "wait=20" },
              description:
                "RFC 7240 `wait=<seconds>`: at the concurrency limit, wait (first come, first served) for a slot instead of a 429. " +
                "Capped at MAX_QUEUE_WAIT_SECONDS and the function's remaining time; Preference-Applied says the wait applied.",
            },
          ],
          requestBody: {
            required: false,
            content: {
              "application/json": { schema: { $ref: "#/components/schemas/CreateSessionRequest" } },
            },
          },
          responses: {
            "201": {
              description: "The session, with where and how to connect",
              headers: {
                "Preference-Applied": {
                  schema: { type: "string" },
                  description: "`wait=<seconds>` when the request sent Prefer: wait",
                },
              },
              content: { "application/json": { schema: { $ref: "#/components/schemas/CreatedSession" } } },
            },
            "400": errorResponse("Invalid body or Prefer header; the message names the field"),
            ...common,
            "409": errorResponse("Idempotency-Key reused with a different body"),
            "413": errorResponse("Body over the size limit"),
            "429": {
              ...errorResponse(
                "The project is at its concurrency limit (the body names limit and running), no slot freed within the wait, or its create rate limit was reached (the message says which)",
              ),
              headers: {
                "Retry-After": { schema: { type: "integer" }, description: "Seconds until a slot frees" },
              },
            },
          },
        },
        get: {
          operationId: "listSessions",
          summary: `List the project's sessions, newest first (at most ${LIST_PAGE_LIMIT} among the newest ${LIST_SCAN_LIMIT})`,
          parameters: [
            {
              name: "status",
              in: "query",
              required: false,
              schema: { type: "string", enum: [...SESSION_STATUSES] },
            },
            {
              name: "q",
              in: "query",
              required: false,
              schema: { type: "string" },
              description: "User-metadata query, e.g. user_metadata['order']:'42', clauses joined with AND",
            },
          ],
          responses: {
            "200": {
              description: "Sessions",
              content: {
                "application/json": {
                  schema: { type: "array", items: { $ref: "#/components/schemas/Session" } },
                },
              },
            },
            "400": errorResponse("Bad status or q"),
            ...common,
          },
        },
      },
      "/v1/sessions/{id}": {
        get: {
          operationId: "getSession",
          summary: "Retrieve a session (a running one with a connectUrl to reconnect)",
          parameters: [sessionId],
          responses: {
            "200": {
              description: "The session",
              content: { "application/json": { schema: { $ref: "#/components/schemas/RetrievedSession" } } },
            },
            ...common,
            "404": errorResponse("No such session in this project"),
          },
        },
        post: {
          operationId: "updateSession",
          summary: "Release a session (REQUEST_RELEASE); releasing an ended session returns it unchanged",
          parameters: [sessionId],
          requestBody: {
            required: true,
            content: {
              "application/json": { schema: { $ref: "#/components/schemas/UpdateSessionRequest" } },
            },
          },
          responses: {
            "200": {
              description: "The session",
              content: { "application/json": { schema: { $ref: "#/components/schemas/Session" } } },
            },
            "400": errorResponse("Body is not a release request"),
            ...common,
            "404": errorResponse("No such session in this project"),
          },
        },
      },
      "/v1/sessions/{id}/debug": {
        get: {
          operationId: "getSessionDebugUrls",
          summary: "Live-view and debugger URLs of a running session",
          parameters: [
            sessionId,
            {
              name: "expiresIn",
              in: "query",
              required: false,
              schema: { type: "integer", minimum: 1, maximum: 21600 },
              description: "Lifetime of the URLs' token in seconds (capped at the session's remaining life)",
            },
          ],
          responses: {
            "200": {
              description: "Debug URLs",
              content: { "application/json": { schema: { $ref: "#/components/schemas/SessionLiveUrls" } } },
            },
            "400": errorResponse("The session has ended, or expiresIn is invalid"),
            ...common,
            "404": errorResponse("No such session in this project"),
          },
        },
      },
      "/health": {
        get: {
          operationId: "health",
          summary: "Whether the API can reach Redis and read its secrets (no API key needed)",
          security: [],
          responses: {
            "200": {
              description: "Ready",
              content: { "application/json": { schema: { $ref: "#/components/schemas/Health" } } },
            },
            "503": {
              description: "Redis or the secrets are unreachable; the body says which",
              content: { "application/json": { schema: { $ref: "#/components/schemas/Health" } } },
            },
          },
        },
      },
      "/v1/extensions": {
        post: {
          operationId: "createExtension",
          summary: `Upload a Chrome extension: a .zip (at most ${MAX_EXTENSION_ARCHIVE_BYTES} bytes) of the unpacked extension folder, manifest.json at its root`,
          requestBody: {
            required: true,
            content: {
              "multipart/form-data": {
                schema: {
                  type: "object",
                  required: ["file"],
                  properties: { file: { type: "string", format: "binary" } },
                },
              },
            },
          },
          responses: {
            "201": {
              description: "The extension",
              content: { "application/json": { schema: { $ref: "#/components/schemas/Extension" } } },
            },
            "400": errorResponse(
              "No file part, not a zip, no manifest.json at the root, unsafe entry paths, or too many entries or unpacked bytes",
            ),
            ...common,
            "409": errorResponse("The project holds as many extensions as it may"),
            "413": errorResponse("The file is over the size limit"),
            "415": errorResponse("The body is not multipart/form-data"),
          },
        },
      },
      "/v1/extensions/{id}": {
        get: {
          operationId: "getExtension",
          summary: "Retrieve an extension",
          parameters: [extensionId],
          responses: {
            "200": {
              description: "The extension",
              content: { "application/json": { schema: { $ref: "#/components/schemas/Extension" } } },
            },
            ...common,
            "404": errorResponse("No such extension in this project"),
          },
        },
        delete: {
          operationId: "deleteExtension",
          summary: "Delete an extension (sessions already created with it keep it)",
          parameters: [extensionId],
          responses: {
            "204": { description: "Deleted" },
            ...common,
            "404": errorResponse("No such extension in this project"),
          },
        },
      },
      "/v1/sessions/{id}/uploads": {
        post: {
          operationId: "uploadSessionFile",
          summary: `Upload a file (at most ${SESSION_FILE_LIMITS.uploadBytes} bytes) for the session's browser: a file input takes it as ${UPLOADS_BROWSER_DIR}<file name>`,
          parameters: [sessionId],
          requestBody: {
            required: true,
            content: {
              "multipart/form-data": {
                schema: {
                  type: "object",
                  required: ["file"],
                  properties: { file: { type: "string", format: "binary" } },
                },
              },
            },
          },
          responses: {
            "200": {
              description: "Stored",
              content: {
                "application/json": {
                  schema: {
                    type: "object",
                    required: ["message"],
                    properties: { message: { type: "string" } },
                  },
                },
              },
            },
            "400": errorResponse("No file part, no file name, or the session has ended"),
            ...common,
            "404": errorResponse("No such session in this project"),
            "409": errorResponse(
              `The session already has ${SESSION_FILE_LIMITS.uploadsPerSession} uploaded files`,
            ),
            "413": errorResponse("The file is over the size limit"),
            "415": errorResponse("The body is not multipart/form-data"),
          },
        },
      },
      "/v1/sessions/{id}/downloads": {
        get: {
          operationId: "getSessionDownloads",
          summary: "A zip of the files the session's browser downloaded; an empty body while there are none",
          parameters: [sessionId],
          responses: {
            "200": {
              description: "The zip (empty body: no downloads yet)",
              content: { "application/zip": { schema: { type: "string", format: "binary" } } },
            },
            "303": {
              description: "Deployed, a zip over 4 MiB: fetch it from the Location (valid 5 minutes)",
            },
            ...common,
            "404": errorResponse("No such session in this project"),
          },
        },
      },
      "/v1/sessions/{id}/logs": {
        get: {
          operationId: "getSessionLogs",
          summary: `The CDP calls the session's clients made, oldest first (the newest ${SESSION_FILE_LIMITS.logEntries}; strings over ${SESSION_FILE_LIMITS.logStringBytes} characters cut)`,
          parameters: [sessionId],
          responses: {
            "200": {
              description: "The log",
              content: {
                "application/json": {
                  schema: { type: "array", items: { $ref: "#/components/schemas/SessionLog" } },
                },
              },
            },
            ...common,
            "404": errorResponse("No such session in this project"),
          },
        },
      },
      "/v1/projects": {
        get: {
          operationId: "listProjects",
          summary: "List projects: the API key's own project",
          responses: {
            "200": {
              description: "One project",
              content: {
                "application/json": {
                  schema: { type: "array", items: { $ref: "#/components/schemas/Project" } },
                },
              },
            },
            ...common,
          },
        },
      },
      "/v1/projects/{id}": {
        get: {
          operationId: "getProject",
          summary: "Retrieve the key's project (its concurrency limit and default session timeout)",
          parameters: [projectId],
          responses: {
            "200": json("Project", "The project"),
            ...common,
            "404": errorResponse("Not this API key's project"),
          },
        },
      },
      "/v1/projects/{id}/usage": {
        get: {
          operationId: "getProjectUsage",
          summary:
            "Usage of the sessions that ended in one UTC calendar month: each session's minutes rounded up (at least one), and the Proxy's bytes",
          parameters: [
            projectId,
            {
              name: "month",
              in: "query",
              required: false,
              schema: { type: "string", pattern: "^\\d{4}-(0[1-9]|1[0-2])$" },
              description: "YYYY-MM; default the current UTC month. Kept 400 days.",
            },
          ],
          responses: {
            "200": json("ProjectUsage", "The usage"),
            "400": errorResponse("month is not YYYY-MM"),
            ...common,
            "404": errorResponse("Not this API key's project"),
          },
        },
      },
      "/v1/contexts": {
        post: {
          operationId: "createContext",
          summary:
            "Create a context: a browser profile kept between sessions, with its upload URL and public key",
          requestBody: {
            required: false,
            content: {
              "application/json": {
                schema: {
                  type: "object",
                  properties: {
                    projectId: { type: "string", description: "Optional; must be the key's project" },
                    name: {
                      type: "string",
                      maxLength: 200,
                      description: "Unique in the project, case-insensitively",
                    },
                  },
                },
              },
            },
          },
          responses: {
            "201": json("ContextUpload", "The context's id, upload URL and public key"),
            "400": errorResponse("Invalid body; the message names the field"),
            ...common,
            "409": errorResponse("The name is taken, or the project holds as many contexts as it may"),
          },
        },
      },
      "/v1/contexts/{id}": {
        get: {
          operationId: "getContext",
          summary: "Retrieve a context",
          parameters: [contextId],
          responses: {
            "200": json("Context", "The context"),
            ...common,
            "404": errorResponse("No such context in this project"),
          },
        },
        put: {
          operationId: "updateContext",
          summary: "A fresh upload URL for the context (the key pair stays)",
          parameters: [contextId],
          responses: {
            "200": json("ContextUpload", "The context's id, a new upload URL and its public key"),
            ...common,
            "404": errorResponse("No such context in this project"),
          },
        },
        delete: {
          operationId: "deleteContext",
          summary:
            "Delete a context with its saved profile (running sessions keep their browser but write nothing back)",
          parameters: [contextId],
          responses: {
            "204": { description: "Deleted" },
            ...common,
            "404": errorResponse("No such context in this project"),
          },
        },
      },
    },
    components: {
      securitySchemes: { apiKey: { type: "apiKey", in: "header", name: "X-BB-API-Key" } },
      schemas: {
        CreateSessionRequest: withoutDialect(jsonSchema(createSessionBodySchema(), "input")),
        UpdateSessionRequest: withoutDialect(jsonSchema(updateSessionBodySchema(), "input")),
        Session: withoutDialect(jsonSchema(sessionSchema(), "output")),
        RetrievedSession: withoutDialect(jsonSchema(retrievedSessionSchema(), "output")),
        CreatedSession: withoutDialect(jsonSchema(createdSessionSchema(), "output")),
        SessionLiveUrls: {
          type: "object",
          required: ["debuggerUrl", "debuggerFullscreenUrl", "wsUrl", "pages"],
          properties: {
            debuggerUrl: { type: "string" },
            debuggerFullscreenUrl: { type: "string" },
            wsUrl: { type: "string" },
            pages: {
              type: "array",
              items: {
                type: "object",
                required: ["id", "url", "title", "debuggerUrl", "debuggerFullscreenUrl"],
                properties: {
                  id: { type: "string" },
                  url: { type: "string" },
                  title: { type: "string" },
                  faviconUrl: { type: "string" },
                  debuggerUrl: { type: "string" },
                  debuggerFullscreenUrl: { type: "string" },
                },
              },
            },
          },
        },
        Health: {
          type: "object",
          required: ["status", "redis", "secrets"],
          properties: {
            status: { type: "string", enum: ["ok", "unavailable"] },
            redis: { type: "string", enum: ["ok", "unavailable"] },
            secrets: { type: "string", enum: ["ok", "unavailable"] },
          },
        },
        Extension: {
          type: "object",
          required: ["id", "fileName", "projectId", "createdAt", "updatedAt"],
          properties: {
            id: { type: "string" },
            fileName: { type: "string" },
            projectId: { type: "string" },
            createdAt: { type: "string", description: "ISO-8601 timestamp" },
            updatedAt: { type: "string", description: "ISO-8601 timestamp" },
          },
        },
        Project: {
          type: "object",
          required: ["id", "name", "concurrency", "defaultTimeout", "ownerId", "createdAt", "updatedAt"],
          properties: {
            id: { type: "string" },
            name: { type: "string" },
            concurrency: {
              type: "integer",
              description: "Live sessions the project may hold at once (all its keys together)",
            },
            defaultTimeout: {
              type: "integer",
              description: "Seconds a session lives when its create names no timeout",
            },
            ownerId: { type: "string" },
            createdAt: { type: "string", description: "ISO-8601 timestamp" },
            updatedAt: { type: "string", description: "ISO-8601 timestamp" },
          },
        },
        SessionLog: {
          type: "object",
          required: ["method", "pageId", "sessionId"],
          properties: {
            method: { type: "string" },
            pageId: { type: "integer", description: "The page's number in the session (0: the browser)" },
            sessionId: { type: "string", description: "The CDP session of the call" },
            frameId: { type: "string" },
            loaderId: { type: "string" },
            request: {
              type: "object",
              properties: {
                params: { type: "object" },
                rawBody: { type: "string" },
                timestamp: { type: "integer" },
              },
            },
            response: {
              type: "object",
              properties: {
                result: { type: "object" },
                rawBody: { type: "string" },
                timestamp: { type: "integer" },
              },
            },
            timestamp: { type: "integer" },
          },
        },
        ProjectUsage: {
          type: "object",
          required: ["browserMinutes", "proxyBytes"],
          properties: { browserMinutes: { type: "integer" }, proxyBytes: { type: "integer" } },
        },
        Context: {
          type: "object",
          required: ["id", "projectId", "createdAt", "updatedAt"],
          properties: {
            id: { type: "string" },
            projectId: { type: "string" },
            name: { type: "string" },
            createdAt: { type: "string", description: "ISO-8601 timestamp" },
            updatedAt: { type: "string", description: "ISO-8601 timestamp: the last upload or write-back" },
          },
        },
        ContextUpload: {
          type: "object",
          required: ["id", "uploadUrl", "publicKey", "cipherAlgorithm", "initializationVectorSize"],
          properties: {
            id: { type: "string" },
            uploadUrl: {
              type: "string",
              description: "PUT the encrypted archive here; expires in 10 minutes",
            },
            publicKey: {
              type: "string",
              description: "SPKI PEM (RSA-2048): wrap the archive's AES key with RSA-OAEP-SHA256",
            },
            cipherAlgorithm: { type: "string", enum: ["AES-256-CBC"] },
            initializationVectorSize: { type: "integer", enum: [16] },
          },
        },
        Error: withoutDialect(jsonSchema(errorBodySchema(), "output")),
      },
    },
  };
}
