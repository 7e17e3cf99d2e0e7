// Tracing through @opentelemetry/api: spans for what a cache miss causes (the get, its cache lookup,
// joining another get's flight, the fetch from the owner on both ends, the getter). The API is a no-op
// until the application registers an SDK, and this module keeps the no-op cheap: a span whose context is
// invalid (no SDK) costs one no-op startSpan and nothing else (no context object, no extra promise,
// no attributes object). Cache hits are never traced: they are answered synchronously in ~0.2 µs, and a
// span would cost as much again.
//
// Across nodes the context travels as W3C trace context (`traceparent`, `tracestate`): in gRPC metadata on
// the unary Get, and in the request message on the multiplexed Fetch stream (one stream carries many
// requests, so per-request context cannot ride in the stream's metadata).

import {
  type Attributes,
  type Context,
  context,
  INVALID_TRACEID,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';

const tracer = trace.getTracer('gossipcache');

/** Span options by kind, allocated once (startSpan runs on every miss). */
const OPTIONS = [SpanKind.INTERNAL, SpanKind.SERVER, SpanKind.CLIENT].map((kind) => ({ kind }));

/**
 * Whether `span` takes part in a trace. Without an SDK every span is the API's non-recording span with
 * the all-zero trace id: one string comparison (the API's isSpanContextValid runs two regexes).
 */
function live(span: Span): boolean {
  return span.spanContext().traceId !== INVALID_TRACEID;
}

/** Span names (stable: dashboards and tests select on them). */
export const SPAN = {
  get: 'gossipcache.get',
  cacheLookup: 'gossipcache.cache.lookup',
  flightJoin: 'gossipcache.flight.join',
  peerFetch: 'gossipcache.peer.fetch',
  peerServe: 'gossipcache.peer.serve',
  getter: 'gossipcache.getter',
  handoffAsk: 'gossipcache.handoff.ask',
  handoffServe: 'gossipcache.handoff.serve',
  handoffPush: 'gossipcache.handoff.push',
} as const;

/** W3C trace context of one request, as carried on the wire. */
export interface TraceCarrier {
  traceparent?: string;
  tracestate?: string;
}

/** Keys longer than this are cut in span attributes (a key may be 64 KiB). */
const KEY_ATTRIBUTE_CHARS = 256;

/** Standard attributes of a span about one key. */
export function keyAttributes(group: string, key: string): Attributes {
  return {
    'gossipcache.group': group,
    'gossipcache.key': key.length > KEY_ATTRIBUTE_CHARS ? `${key.slice(0, KEY_ATTRIBUTE_CHARS)}…` : key,
  };
}

/**
 * Runs `fn` in a new span `name` (child of `parent`, default the active context) that ends when the
 * returned promise settles; a rejection marks it as an error (a NotFound is an answer, not an error).
 * `attributes` is called only when the span records. Without an SDK this is one no-op startSpan.
 */
export function traced<T>(
  name: string,
  kind: SpanKind,
  attributes: (() => Attributes) | undefined,
  fn: () => Promise<T>,
  parent?: Context,
): Promise<T> {
  const base = parent ?? context.active();
  const span = tracer.startSpan(name, OPTIONS[kind] ?? { kind }, base);
  if (!live(span)) return fn();
  if (attributes !== undefined && span.isRecording()) span.setAttributes(attributes());
  let p: Promise<T>;
  try {
    // Promise.resolve: a JavaScript getter may return a plain value despite its type.
    p = Promise.resolve(context.with(trace.setSpan(base, span), fn));
  } catch (err) {
    endSpan(span, err);
    throw err;
  }
  return p.then(
    (v) => {
      span.end();
      return v;
    },
    (err: unknown) => {
      endSpan(span, err);
      throw err;
    },
  );
}

/** Like `traced` for synchronous work (`kind` and `parent` as there). */
export function tracedSync<T>(
  name: string,
  attributes: (() => Attributes) | undefined,
  fn: () => T,
  kind: SpanKind = SpanKind.INTERNAL,
  parent?: Context,
): T {
  const span = tracer.startSpan(name, OPTIONS[kind] ?? { kind }, parent ?? context.active());
  if (!live(span)) return fn();
  if (attributes !== undefined && span.isRecording()) span.setAttributes(attributes());
  try {
    const v = fn();
    span.end();
    return v;
  } catch (err) {
    endSpan(span, err);
    throw err;
  }
}

function endSpan(span: Span, err: unknown): void {
  const name = (err as Error | undefined)?.name;
  if (name === 'NotFoundError') {
    span.setAttribute('gossipcache.not_found', true);
  } else {
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: (err as Error | undefined)?.message ?? String(err),
    });
    if (err instanceof Error) span.recordException(err);
  }
  span.end();
}

/**
 * The active context as W3C trace context, for a request leaving this process; undefined when no span
 * is active (always without an SDK), so untraced requests carry nothing.
 */
export function outgoingTraceContext(): TraceCarrier | undefined {
  const ctx = context.active();
  if (trace.getSpan(ctx) === undefined) return undefined;
  const carrier: TraceCarrier = {};
  propagation.inject(ctx, carrier);
  return carrier.traceparent === undefined ? undefined : carrier;
}

/** The context a request arrived with (root when it carried none). */
export function incomingTraceContext(carrier: TraceCarrier | undefined): Context {
  if (carrier?.traceparent === undefined) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, carrier);
}

export { SpanKind };

/** W3C trace context from gRPC metadata (`traceparent`, `tracestate` keys), for unary calls. */
export function traceMetadata(md: { get(key: string): (string | Buffer)[] }): TraceCarrier | undefined {
  const traceparent = md.get('traceparent')[0];
  if (typeof traceparent !== 'string') return undefined;
  const tracestate = md.get('tracestate')[0];
  return { traceparent, tracestate: typeof tracestate === 'string' ? tracestate : undefined };
}
