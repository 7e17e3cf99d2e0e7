// Tracing: with an OpenTelemetry SDK registered (in-memory exporter), one cold get through a node that
// does not own the key is ONE trace across the two nodes: get → cache lookup → peer fetch (client) on the
// caller, then peer serve (server) → get → cache lookup → handoff ask (→ handoff serve back on the
// caller) → getter on the owner, the owner's spans children of the caller's fetch span through the
// context carried in the Fetch request. Concurrent gets join the
// first one's flight; the trace context codec round-trips and drops oversized values.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { context, propagation, trace } from '@opentelemetry/api';
import {
  InMemorySpanExporter,
  NodeTracerProvider,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-node';
import { decodeFetchBatch, encodeFetchBatch, type FetchRequest } from '../../src/grpc/codec.js';
import { SPAN } from '../../src/tracing.js';
import { type Cluster, keyOwnedBy, startCluster } from '../support/grpc-cluster.js';
import { sleep } from '../support/wait.js';

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
let cluster: Cluster;

before(async () => {
  provider.register();
  cluster = await startCluster({
    nodes: 2,
    getter:
      ({ addr }) =>
      async (key) => {
        await sleep(20);
        return `${key}@${addr}`;
      },
  });
});

after(async () => {
  await cluster?.close();
  await provider.shutdown();
  trace.disable();
  context.disable();
  propagation.disable();
});

function byName(spans: readonly ReadableSpan[], name: string): ReadableSpan[] {
  return spans.filter((s) => s.name === name);
}

function parentId(s: ReadableSpan): string | undefined {
  return s.parentSpanContext?.spanId;
}

test('one cold get through a non-owner is one trace across the two nodes', async () => {
  exporter.reset();
  const key = keyOwnedBy(cluster.nodes[0], cluster.nodes[1], 'traced');
  const caller = cluster.nodes[0];
  assert.equal(await caller.group.getString(key), `${key}@${cluster.addrs[1]}`);
  await sleep(50); // the owner's server span ends as its reply is sent
  const spans = exporter.getFinishedSpans();
  const traceIds = new Set(spans.map((s) => s.spanContext().traceId));
  assert.equal(traceIds.size, 1, spans.map((s) => `${s.name} ${s.spanContext().traceId}`).join('\n'));

  const gets = byName(spans, SPAN.get);
  assert.equal(gets.length, 2, 'one get on each node');
  const root = gets.find((s) => parentId(s) === undefined);
  assert.ok(root, 'the caller’s get is the root');
  assert.equal(root.attributes['gossipcache.key'], key);
  const [fetch] = byName(spans, SPAN.peerFetch);
  assert.equal(parentId(fetch), root.spanContext().spanId);
  assert.equal(fetch.kind, 2 /* CLIENT */);
  assert.equal(fetch.attributes['gossipcache.peer'], cluster.addrs[1]);
  const [serve] = byName(spans, SPAN.peerServe);
  assert.equal(serve.kind, 1 /* SERVER */);
  assert.equal(parentId(serve), fetch.spanContext().spanId, 'the owner continues the caller’s fetch span');
  const ownerGet = gets.find((s) => s !== root);
  assert.ok(ownerGet);
  assert.equal(parentId(ownerGet), serve.spanContext().spanId);
  const getters = byName(spans, SPAN.getter);
  assert.equal(getters.length, 1, 'the getter ran once, on the owner');
  assert.equal(parentId(getters[0]), ownerGet.spanContext().spanId);
  const lookups = byName(spans, SPAN.cacheLookup);
  assert.deepEqual(lookups.map(parentId).sort(), [root, ownerGet].map((s) => s.spanContext().spanId).sort());
  // The cluster has just formed, so the owner is inside its handoff window: before its getter it asks the
  // key's previous holder (the caller) for a cached copy. That question is in the trace too, both ends.
  const [ask] = byName(spans, SPAN.handoffAsk);
  assert.equal(ask.kind, 2 /* CLIENT */);
  assert.equal(parentId(ask), ownerGet.spanContext().spanId);
  assert.equal(ask.attributes['gossipcache.peer'], cluster.addrs[0]);
  const [answer] = byName(spans, SPAN.handoffServe);
  assert.equal(parentId(answer), ask.spanContext().spanId);
  assert.equal(spans.length, 9, spans.map((s) => s.name).join(', '));

  // Warm now: a hit is answered without any span.
  exporter.reset();
  await caller.group.getString(key);
  await cluster.nodes[1].group.getString(key);
  assert.equal(exporter.getFinishedSpans().length, 0);
});

test('concurrent gets of one key: the others join the first one’s flight (a span each)', async () => {
  exporter.reset();
  const key = keyOwnedBy(cluster.nodes[1], cluster.nodes[0], 'joined');
  const owner = cluster.nodes[0];
  const values = await Promise.all([1, 2, 3].map(() => owner.group.getString(key)));
  assert.deepEqual(new Set(values), new Set([`${key}@${cluster.addrs[0]}`]));
  const spans = exporter.getFinishedSpans();
  assert.equal(byName(spans, SPAN.getter).length, 1);
  assert.equal(byName(spans, SPAN.flightJoin).length, 2);
  assert.equal(byName(spans, SPAN.get).length, 3);
});

test('a failing getter marks its spans as errors; NotFound is an answer', async () => {
  exporter.reset();
  const { Group, GroupRegistry } = await import('../../src/group.js');
  const { NotFoundError } = await import('../../src/errors.js');
  const g = new Group({
    name: 'failing',
    cacheBytes: 1 << 20,
    registry: new GroupRegistry(),
    getter: async (key) => {
      if (key === 'missing') throw new NotFoundError('no such key');
      throw new Error('origin down');
    },
  });
  await assert.rejects(g.get('broken'), /origin down/);
  await assert.rejects(g.get('missing'), /no such key/);
  const getters = byName(exporter.getFinishedSpans(), SPAN.getter);
  assert.equal(getters.length, 2);
  const broken = getters.find((s) => s.attributes['gossipcache.key'] === 'broken');
  const missing = getters.find((s) => s.attributes['gossipcache.key'] === 'missing');
  assert.equal(broken?.status.code, 2 /* ERROR */);
  assert.equal(missing?.status.code, 0 /* UNSET */);
  assert.equal(missing?.attributes['gossipcache.not_found'], true);
  g.close();
});

test('FetchRequest trace context: round-trips, absent when not traced, oversized values dropped', () => {
  const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  const reqs: FetchRequest[] = [
    { id: 1, group: 'g', key: 'a', timeoutMs: 10, cancel: false, trace: { traceparent, tracestate: 'k=v' } },
    { id: 2, group: 'g', key: 'b', timeoutMs: 10, cancel: false },
    { id: 3, group: 'g', key: 'c', timeoutMs: 0, cancel: false, trace: { traceparent: 'x'.repeat(500) } },
  ];
  const out = decodeFetchBatch(encodeFetchBatch(reqs)) as FetchRequest[];
  assert.deepEqual(out[0].trace, { traceparent, tracestate: 'k=v' });
  assert.equal(out[0].key, 'a');
  assert.equal(out[1].trace, undefined);
  assert.equal(out[2].trace, undefined);
  assert.equal(out[2].invalid, undefined, 'a bad trace context is dropped, not an error');
});
