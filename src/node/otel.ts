// Trace export of the node process, turned on by the standard OpenTelemetry environment variables.
// The library only calls @opentelemetry/api (src/tracing.ts); this registers an SDK for the CLI when
// asked, and is not loaded otherwise:
//
//   OTEL_TRACES_EXPORTER=otlp | console | none   (otlp = OTLP over HTTP, JSON)
//   OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT   (setting one implies otlp)
//   OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_*,
//   OTEL_SERVICE_NAME (default gossipcache), OTEL_RESOURCE_ATTRIBUTES, OTEL_SDK_DISABLED=true
//
// Unlike the spec's default exporter (otlp to localhost), nothing is exported unless one of these asks:
// a cache node must not start failing requests to a collector nobody runs.

import type { PinoLogger } from './log.js';

/** A registered SDK: flush and stop it at shutdown. */
export interface Tracing {
  /** What is exported where, for the start log line. */
  readonly description: string;
  shutdown(): Promise<void>;
}

/** Which exporter the environment asks for, or why none (pure: tested without an SDK). */
export function traceExporterOf(env: NodeJS.ProcessEnv): 'otlp' | 'console' | { off: string } {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return { off: 'OTEL_SDK_DISABLED=true' };
  const named = env.OTEL_TRACES_EXPORTER?.trim().toLowerCase();
  if (named !== undefined && named !== '') {
    if (named === 'otlp' || named === 'console') return named;
    if (named === 'none') return { off: 'OTEL_TRACES_EXPORTER=none' };
    return { off: `OTEL_TRACES_EXPORTER=${named} is not supported (otlp, console or none)` };
  }
  if (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT) return 'otlp';
  return { off: 'no OTEL_TRACES_EXPORTER or OTEL_EXPORTER_OTLP_ENDPOINT' };
}

/**
 * Registers a tracer provider (global, with the async-hooks context manager and W3C propagation) that
 * exports as the environment asks; undefined when it asks for nothing.
 */
export async function startTracing(
  env: NodeJS.ProcessEnv,
  log: PinoLogger,
  version: string,
): Promise<Tracing | undefined> {
  const which = traceExporterOf(env);
  if (typeof which === 'object') {
    if (env.OTEL_TRACES_EXPORTER !== undefined && which.off.includes('not supported')) log.warn(which.off);
    return undefined;
  }
  const [{ NodeTracerProvider, BatchSpanProcessor, ConsoleSpanExporter }, resources] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/resources'),
  ]);
  let exporter: import('@opentelemetry/sdk-trace-node').SpanExporter;
  let description: string;
  if (which === 'otlp') {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    exporter = new OTLPTraceExporter();
    description = `otlp ${env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT || '(default endpoint)'}`;
  } else {
    exporter = new ConsoleSpanExporter();
    description = 'console';
  }
  // Our defaults, then what OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME say (they win).
  const resource = resources
    .resourceFromAttributes({ 'service.name': 'gossipcache', 'service.version': version })
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(exporter)] });
  provider.register();
  return {
    description,
    async shutdown() {
      try {
        await provider.shutdown();
      } catch (err) {
        log.warn({ err }, 'trace export: flushing the last spans failed');
      }
    },
  };
}
