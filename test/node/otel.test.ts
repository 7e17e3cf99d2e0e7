// Trace export from the CLI: the OTEL_* environment turns it on, and two CLI nodes send one cold get's
// spans to an OTLP/HTTP collector (a stand-in on 127.0.0.1 that records what it receives) as one trace.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { traceExporterOf } from '../../src/node/otel.js';
import { Ring } from '../../src/ring.js';
import { type NodePorts, nodePorts, startCli, stopCli } from '../support/cli-node.js';
import { httpGet } from '../support/http.js';
import { waitFor } from '../support/wait.js';

test('which exporter the OTEL_* environment asks for', () => {
  assert.deepEqual(traceExporterOf({}), { off: 'no OTEL_TRACES_EXPORTER or OTEL_EXPORTER_OTLP_ENDPOINT' });
  assert.equal(traceExporterOf({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), 'otlp');
  assert.equal(traceExporterOf({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' }), 'otlp');
  assert.equal(traceExporterOf({ OTEL_TRACES_EXPORTER: 'console' }), 'console');
  assert.equal(traceExporterOf({ OTEL_TRACES_EXPORTER: 'OTLP' }), 'otlp');
  assert.ok(
    typeof traceExporterOf({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c' }) ===
      'object',
  );
  assert.ok(typeof traceExporterOf({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' }) === 'object');
  assert.match((traceExporterOf({ OTEL_TRACES_EXPORTER: 'zipkin' }) as { off: string }).off, /not supported/);
});

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
}

test('two CLI nodes export one cold get as one trace over OTLP/HTTP', async () => {
  // The collector: records every span it is sent, by the sending node's `node` resource attribute.
  const received: { node: string; span: OtlpSpan }[] = [];
  const collector = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const doc = JSON.parse(body);
        for (const rs of doc.resourceSpans ?? []) {
          const attrs = rs.resource?.attributes ?? [];
          const node = attrs.find((a: { key: string }) => a.key === 'node')?.value?.stringValue;
          const service = attrs.find((a: { key: string }) => a.key === 'service.name')?.value?.stringValue;
          assert.equal(service, 'cache-under-test');
          for (const ss of rs.scopeSpans ?? [])
            for (const span of ss.spans ?? []) received.push({ node, span });
        }
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{}');
    });
  });
  collector.listen(0, '127.0.0.1');
  await once(collector, 'listening');
  const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
  const ports: NodePorts[] = [await nodePorts(), await nodePorts()];
  const nodes = ports.map((p, i) =>
    startCli(p, {
      GOSSIPCACHE_SEEDS: `127.0.0.1:${ports[1 - i].gossip}`,
      GOSSIPCACHE_ORIGIN: 'demo:10ms',
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_SERVICE_NAME: 'cache-under-test',
      OTEL_RESOURCE_ATTRIBUTES: `node=n${i}`,
      OTEL_BSP_SCHEDULE_DELAY: '100',
    }),
  );
  try {
    await waitFor('one ring of 2', async () => {
      const views = await Promise.all(
        nodes.map(async (n) => JSON.parse((await httpGet(`${n.http}/_cluster`)).text)),
      );
      return views.every((v) => v.ring.length === 2 && v.ringChecksum === views[0].ringChecksum);
    });
    assert.match(nodes[0].output(), /"tracing":"otlp http:\/\/127\.0\.0\.1:\d+"/);
    const ring = new Ring({ labels: ports.map((p) => `127.0.0.1:${p.grpc}`) });
    let key = 'otel-0';
    for (let i = 1; ring.owner(key) !== `127.0.0.1:${ports[1].grpc}`; i++) key = `otel-${i}`;
    assert.equal((await httpGet(`${nodes[0].http}/default/${key}`)).text, `Value of ${key}`);

    const trace = await waitFor('the get’s spans from both nodes', async () => {
      const root = received.find((r) => r.span.name === 'gossipcache.get' && !r.span.parentSpanId);
      if (!root) return undefined;
      const inTrace = received.filter((r) => r.span.traceId === root.span.traceId);
      return inTrace.some((r) => r.span.name === 'gossipcache.getter') ? inTrace : undefined;
    });
    const where = (name: string) =>
      trace
        .filter((r) => r.span.name === name)
        .map((r) => r.node)
        .sort();
    assert.deepEqual(where('gossipcache.get'), ['n0', 'n1']);
    assert.deepEqual(where('gossipcache.peer.fetch'), ['n0']);
    assert.deepEqual(where('gossipcache.peer.serve'), ['n1']);
    assert.deepEqual(where('gossipcache.getter'), ['n1']);
    const fetch = trace.find((r) => r.span.name === 'gossipcache.peer.fetch')!.span;
    const serve = trace.find((r) => r.span.name === 'gossipcache.peer.serve')!.span;
    assert.equal(serve.parentSpanId, fetch.spanId);
  } finally {
    const codes = await Promise.all(nodes.map((n) => stopCli(n)));
    collector.close();
    assert.deepEqual(codes, [0, 0]);
  }
});
