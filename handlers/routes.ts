import type { HttpHandler } from "../lib/http";
import type { SessionDeps } from "../lib/sessions";
import { createSessionHandler } from "./create-session";
import { healthHandler } from "./health";
import {
  createContextHandler,
  deleteContextHandler,
  getContextHandler,
  updateContextHandler,
} from "./contexts";
import { getProjectHandler, listProjectsHandler, projectUsageHandler } from "./projects";
import { sessionDownloadsHandler, sessionLogsHandler, uploadSessionFileHandler } from "./session-files";
import { createExtensionHandler, deleteExtensionHandler, getExtensionHandler } from "./extensions";
import { getSessionHandler } from "./get-session";
import { listSessionsHandler } from "./list-sessions";
import { sessionDebugHandler } from "./session-debug";
import { updateSessionHandler } from "./update-session";

/** One API route: one handler module, one Lambda, one API Gateway route. */
export interface RouteDefinition {
  /** Short name, used for the Lambda and its log group. */
  name: string;
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** API Gateway path, with `{param}` segments. */
  path: string;
  factory: (deps: SessionDeps) => HttpHandler;
  /**
   * The route may hold a request for up to MAX_QUEUE_WAIT_SECONDS (a create waiting for a slot):
   * its function gets the longest timeout API Gateway's 30 s allows.
   */
  holdsRequests?: boolean;
}

/** Every route of the public API. The infrastructure makes one function per entry. */
export const ROUTES: readonly RouteDefinition[] = [
  {
    name: "create-session",
    method: "POST",
    path: "/v1/sessions",
    factory: createSessionHandler,
    holdsRequests: true,
  },
  { name: "list-sessions", method: "GET", path: "/v1/sessions", factory: listSessionsHandler },
  { name: "get-session", method: "GET", path: "/v1/sessions/{id}", factory: getSessionHandler },
  { name: "update-session", method: "POST", path: "/v1/sessions/{id}", factory: updateSessionHandler },
  { name: "session-debug", method: "GET", path: "/v1/sessions/{id}/debug", factory: sessionDebugHandler },
  {
    name: "session-uploads",
    method: "POST",
    path: "/v1/sessions/{id}/uploads",
    factory: uploadSessionFileHandler,
  },
  {
    name: "session-downloads",
    method: "GET",
    path: "/v1/sessions/{id}/downloads",
    factory: sessionDownloadsHandler,
  },
  { name: "session-logs", method: "GET", path: "/v1/sessions/{id}/logs", factory: sessionLogsHandler },
  { name: "create-extension", method: "POST", path: "/v1/extensions", factory: createExtensionHandler },
  { name: "get-extension", method: "GET", path: "/v1/extensions/{id}", factory: getExtensionHandler },
  {
    name: "delete-extension",
    method: "DELETE",
    path: "/v1/extensions/{id}",
    factory: deleteExtensionHandler,
  },
  { name: "list-projects", method: "GET", path: "/v1/projects", factory: listProjectsHandler },
  { name: "get-project", method: "GET", path: "/v1/projects/{id}", factory: getProjectHandler },
  { name: "project-usage", method: "GET", path: "/v1/projects/{id}/usage", factory: projectUsageHandler },
  { name: "create-context", method: "POST", path: "/v1/contexts", factory: createContextHandler },
  { name: "get-context", method: "GET", path: "/v1/contexts/{id}", factory: getContextHandler },
  { name: "update-context", method: "PUT", path: "/v1/contexts/{id}", factory: updateContextHandler },
  { name: "delete-context", method: "DELETE", path: "/v1/contexts/{id}", factory: deleteContextHandler },
  { name: "health", method: "GET", path: "/health", factory: healthHandler },
];

export type RouteMatch =
  | { kind: "match"; route: RouteDefinition; pathParameters: Record<string, string> }
  | { kind: "method-not-allowed"; allowed: string[] }
  | { kind: "not-found" };

function matchPath(template: string, path: string): Record<string, string> | undefined {
  const want = template.split("/");
  const got = path.split("/");
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const segment = want[i];
    if (segment.startsWith("{") && segment.endsWith("}")) {
      if (got[i] === "") return undefined;
      let value: string;
      try {
        value = decodeURIComponent(got[i]);
      } catch {
        return undefined;
      }
      params[segment.slice(1, -1)] = value;
    } else if (segment !== got[i]) {
      return undefined;
    }
  }
  return params;
}

/** Finds the route for a method and path, or says why there is none (404, or 405 with what is allowed). */
export function matchRoute(routes: readonly RouteDefinition[], method: string, rawPath: string): RouteMatch {
  const path = rawPath.length > 1 ? rawPath.replace(/\/+$/, "") : rawPath;
  const allowed: string[] = [];
  for (const route of routes) {
    const params = matchPath(route.path, path);
    if (!params) continue;
    if (route.method === method.toUpperCase()) return { kind: "match", route, pathParameters: params };
    allowed.push(route.method);
  }
  return allowed.length > 0 ? { kind: "method-not-allowed", allowed } : { kind: "not-found" };
}
