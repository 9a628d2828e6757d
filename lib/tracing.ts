/**
 * X-Ray traces through Powertools for AWS Lambda Tracer, loaded only where tracing is on. The
 * tracer brings the X-Ray SDK, which takes tens of milliseconds to load: a container without
 * active tracing (the local stack, the tests, a function deployed without it) never loads it.
 */

/** One open subsegment. `end` is idempotent. */
export interface TraceSpan {
  end(error?: unknown): void;
}

/** The narrow tracing interface the adapter and the Redis and secrets wrappers depend on. */
export interface Tracing {
  readonly enabled: boolean;
  /** Opens the subsegment of one invocation (`## <name>`); spans attach to it until it ends. */
  beginInvocation(name: string): TraceSpan;
  /** A subsegment of the current invocation for a call to `name` (Redis, Secrets Manager); a no-op outside one. */
  span(name: string, metadata?: Record<string, string>): TraceSpan;
  /** An annotation (indexed, searchable) on the current invocation's subsegment. */
  annotate(key: string, value: string | number | boolean): void;
}

const NO_SPAN: TraceSpan = { end: () => undefined };

/** Tracing that does nothing and loads nothing. */
export const NO_TRACING: Tracing = {
  enabled: false,
  beginInvocation: () => NO_SPAN,
  span: () => NO_SPAN,
  annotate: () => undefined,
};

/**
 * True when traces would go somewhere: POWERTOOLS_TRACE_ENABLED decides when set; otherwise a
 * function with active tracing, where Lambda sets the X-Ray daemon address (or a trace header).
 */
export function tracingActive(env: Record<string, string | undefined>): boolean {
  const explicit = env.POWERTOOLS_TRACE_ENABLED?.trim().toLowerCase();
  if (explicit) return ["1", "true", "yes", "on", "y"].includes(explicit);
  if (!env.AWS_LAMBDA_FUNCTION_NAME) return false;
  return Boolean(env.AWS_XRAY_DAEMON_ADDRESS || env._X_AMZN_TRACE_ID);
}

/** What this module needs of an X-Ray (sub)segment. */
interface XraySegment {
  addNewSubsegment(name: string): XraySegment;
  addAnnotation(key: string, value: string | number | boolean): void;
  addMetadata(key: string, value: unknown): void;
  addError(error: Error | string, remote?: boolean): void;
  close(): void;
  namespace?: string;
}

/** What this module needs of the Powertools Tracer. */
interface PowertoolsTracer {
  isTracingEnabled(): boolean;
  getSegment(): XraySegment | undefined;
  setSegment(segment: XraySegment): void;
  annotateColdStart(): void;
  addServiceNameAnnotation(): void;
}

function spanOf(segment: XraySegment, onEnd?: () => void): TraceSpan {
  let open = true;
  return {
    end(error) {
      if (!open) return;
      open = false;
      try {
        if (error !== undefined) segment.addError(error instanceof Error ? error : String(error), true);
        segment.close();
      } catch {
        // A trace must never fail a request.
      }
      onEnd?.();
    },
  };
}

/**
 * The container's tracing: Powertools Tracer when `tracingActive(env)`, else `NO_TRACING`.
 * Call once per container (the runtime does). Assumes one invocation at a time per container,
 * as Lambda runs them: the current invocation's subsegment is the parent of every span.
 */
export function createTracing(
  env: Record<string, string | undefined> = process.env,
  options: { serviceName?: string; onUnavailable?: (error: unknown) => void } = {},
): Tracing {
  if (!tracingActive(env)) return NO_TRACING;
  let tracer: PowertoolsTracer;
  try {
    // Required here, not imported at the top: only a traced container pays for loading the X-Ray SDK.
    const { Tracer } = require("@aws-lambda-powertools/tracer") as {
      Tracer: new (options: { serviceName: string }) => PowertoolsTracer;
    };
    tracer = new Tracer({
      serviceName: env.POWERTOOLS_SERVICE_NAME?.trim() || options.serviceName || "wallcrawler-api",
    });
  } catch (error) {
    // A package left out of the code archive costs the traces, never the API.
    options.onUnavailable?.(error);
    return NO_TRACING;
  }
  if (!tracer.isTracingEnabled()) return NO_TRACING;
  let current: XraySegment | undefined;
  return {
    enabled: true,
    beginInvocation(name) {
      let parent: XraySegment | undefined;
      try {
        parent = tracer.getSegment();
      } catch {
        parent = undefined;
      }
      if (!parent) return NO_SPAN;
      const invocation = parent.addNewSubsegment(`## ${name}`);
      current = invocation;
      try {
        tracer.setSegment(invocation);
        tracer.annotateColdStart();
        tracer.addServiceNameAnnotation();
      } catch {
        // Only the annotations and the SDK's own HTTP subsegments depend on this.
      }
      return spanOf(invocation, () => {
        if (current === invocation) current = undefined;
        try {
          tracer.setSegment(parent);
        } catch {
          // As above.
        }
      });
    },
    span(name, metadata) {
      if (!current) return NO_SPAN;
      const segment = current.addNewSubsegment(name);
      // "remote": X-Ray draws the dependency as its own node on the service map.
      segment.namespace = "remote";
      if (metadata) for (const [key, value] of Object.entries(metadata)) segment.addMetadata(key, value);
      return spanOf(segment);
    },
    annotate(key, value) {
      current?.addAnnotation(key, value);
    },
  };
}
