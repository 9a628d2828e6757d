/**
 * The payload-2.0 events the fresh-process probes hand the serialized functions: the requests the
 * load runs send, addressed to the sessions and keys that `setUp` made.
 */
import { apiEvent } from "../local/events";
import type { BenchContext } from "./setup";
import { createBody, PROJECTS } from "./workload";

export type ProbeEvent = ReturnType<typeof apiEvent>;

/** A retrieve of session `id` of the list project. */
export function getSessionEvent(ctx: BenchContext, id: string): ProbeEvent {
  return apiEvent({
    method: "GET",
    path: `/v1/sessions/${id}`,
    routePath: "/v1/sessions/{id}",
    headers: { "x-bb-api-key": ctx.apiKeys.list },
    pathParameters: { id },
  });
}

/** For each function, one request it answers: each call makes a fresh event (a release takes a fresh session). */
export function functionEvents(ctx: BenchContext): Record<string, () => ProbeEvent> {
  const { apiKeys, listIds, releases } = ctx;
  return {
    "create-session": () =>
      apiEvent({
        method: "POST",
        path: "/v1/sessions",
        routePath: "/v1/sessions",
        headers: { "x-bb-api-key": apiKeys.probe },
        body: createBody(PROJECTS.probe),
      }),
    "list-sessions": () =>
      apiEvent({
        method: "GET",
        path: "/v1/sessions",
        routePath: "/v1/sessions",
        headers: { "x-bb-api-key": apiKeys.list },
      }),
    "get-session": () => getSessionEvent(ctx, listIds[1]),
    "update-session": () => {
      const id = releases.next();
      return apiEvent({
        method: "POST",
        path: `/v1/sessions/${id}`,
        routePath: "/v1/sessions/{id}",
        headers: { "x-bb-api-key": apiKeys.release },
        body: { status: "REQUEST_RELEASE" },
        pathParameters: { id },
      });
    },
    "session-debug": () =>
      apiEvent({
        method: "GET",
        path: `/v1/sessions/${listIds[2]}/debug`,
        routePath: "/v1/sessions/{id}/debug",
        headers: { "x-bb-api-key": apiKeys.list },
        pathParameters: { id: listIds[2] },
      }),
    fallback: () =>
      apiEvent({
        method: "GET",
        path: "/v1/unknown",
        routePath: "$default",
        headers: { "x-bb-api-key": apiKeys.list },
      }),
  };
}
