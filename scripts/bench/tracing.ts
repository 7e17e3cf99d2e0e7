// What tracing costs. The core calls @opentelemetry/api on every cache miss (src/tracing.ts:
// a get span, a cache-lookup span, a getter or peer-fetch span); hits are never traced. Without an SDK the
// API is a no-op, and this measures that no-op against the miss it rides on, then the same miss with an
// SDK registered (every span recorded, none exported), all in this process on CPU time (best of 3).
//
// Rows: a miss through a getter that answers at once (fresh key each time, 64 in flight), no SDK — the
// baseline; the no-op span calls one such miss makes, alone (what instrumentation adds by default); the
// miss with NodeTracerProvider registered (AlwaysOn sampler, no processor: the cost of making spans).
import { context, propagation, trace } from '@opentelemetry/api';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { Group, GroupRegistry } from '../../src/group.js';
import { SPAN, SpanKind, traced, tracedSync } from '../../src/tracing.js';
import { isMain, runAlone } from './lib/main.js';
import type { BenchOptions, BenchRow } from './lib/types.js';

const BENCH = 'tracing';
const CONCURRENCY = 64;

function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

/** ns of CPU per miss: `ops` gets of fresh keys, CONCURRENCY at a time. Best of 3. */
async function missNs(ops: number, tag: string): Promise<number> {
  let best = Number.POSITIVE_INFINITY;
  for (let pass = 0; pass < 3; pass++) {
    const g = new Group({
      name: `bench-${tag}-${pass}`,
      cacheBytes: 4 << 20,
      registry: new GroupRegistry(),
      getter: async (key) => key,
    });
    const t0 = cpuNs();
    for (let i = 0; i < ops; i += CONCURRENCY) {
      const batch: Promise<Buffer>[] = [];
      for (let j = 0; j < CONCURRENCY; j++) batch.push(g.get(`${tag}-${pass}-${i + j}`));
      await Promise.all(batch);
    }
    best = Math.min(best, (cpuNs() - t0) / ops);
    g.close();
  }
  return best;
}

/** ns of CPU for the span calls one miss makes (get, cache lookup, getter), with trivial bodies. */
async function spanCallsNs(ops: number): Promise<number> {
  const done = Promise.resolve(1);
  const body = () => done;
  const attrs = () => ({ 'gossipcache.group': 'g' });
  let best = Number.POSITIVE_INFINITY;
  for (let pass = 0; pass < 3; pass++) {
    const t0 = cpuNs();
    for (let i = 0; i < ops; i++) {
      traced(SPAN.get, SpanKind.INTERNAL, attrs, () => {
        tracedSync(SPAN.cacheLookup, undefined, () => undefined);
        return traced(SPAN.getter, SpanKind.INTERNAL, attrs, body);
      });
    }
    best = Math.min(best, (cpuNs() - t0) / ops);
  }
  return best;
}

export async function run(opts: BenchOptions): Promise<BenchRow[]> {
  const ops = opts.quick ? 50_000 : 200_000;
  await missNs(10_000, 'warm'); // JIT warm-up
  const bare = await missNs(ops, 'nosdk');
  const noop = await spanCallsNs(ops);
  const provider = new NodeTracerProvider();
  provider.register();
  let withSdk: number;
  try {
    await missNs(10_000, 'warm-sdk');
    withSdk = await missNs(ops, 'sdk');
  } finally {
    await provider.shutdown();
    trace.disable();
    context.disable();
    propagation.disable();
  }
  const base = 'miss, no SDK';
  return [
    { bench: BENCH, case: base, metrics: { 'ns/miss (CPU)': Math.round(bare) } },
    {
      bench: BENCH,
      case: 'no-op span calls of one miss (3)',
      metrics: { 'ns/miss (CPU)': Math.round(noop) },
      baseline: base,
      ratio: noop / bare,
      goal: 'no-op ≪ the miss (report)',
    },
    {
      bench: BENCH,
      case: 'miss, SDK registered (spans recorded, not exported)',
      metrics: { 'ns/miss (CPU)': Math.round(withSdk) },
      baseline: base,
      ratio: withSdk / bare,
      goal: 'report',
    },
  ];
}

if (isMain(import.meta.url)) await runAlone(run);
