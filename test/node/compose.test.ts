// Structure of docker-compose.yml, Dockerfile and the compose/CLI contract between them: plain
// `docker compose up` gives 3 replicas that seed by the service name, reachable from the host.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { parseConfig } from '../../src/node/config.js';

const root = join(import.meta.dirname, '../..');
const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8'));
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');

test('the node service scales, seeds by its own service name and publishes a host port range', () => {
  const node = compose.services.node;
  assert.ok(node, 'a service named node');
  assert.equal(node.scale ?? node.deploy?.replicas, 3, '3 replicas by default');
  assert.equal(node.environment.GOSSIPCACHE_SEEDS, 'node');
  assert.ok(node.build, 'built from this repository');
  const ports: string[] = node.ports;
  const http = ports.find((p) => p.endsWith(':8080'));
  assert.ok(http, 'the HTTP port is published');
  const m = /^(\d+)-(\d+):8080$/.exec(http);
  assert.ok(m, `a host port range, so replicas do not collide: ${http}`);
  assert.ok(Number(m[2]) - Number(m[1]) + 1 >= 5, 'room for --scale node=5');
  const mc = /^(\d+)-(\d+):11211$/.exec(ports.find((p) => p.endsWith(':11211')) ?? '');
  assert.ok(mc, 'the memcached port is published as a range');
  assert.equal(node.environment.GOSSIPCACHE_MEMCACHED_ADDR, '0.0.0.0:11211');
});

test('the environment of the node service is a valid configuration', () => {
  const env = { ...compose.services.node.environment } as Record<string, string>;
  const r = parseConfig([], env);
  assert.equal(r.help, false);
  if (!r.help) {
    assert.deepEqual(r.config.seeds, ['node:7946']);
    const origin = r.config.groups[0].origin;
    const host = new URL(origin.replace('{key}', 'k')).hostname;
    assert.ok(compose.services[host], `the origin ${origin} is a service of the compose file`);
  }
});

test('the origin service runs the example origin from the same image', () => {
  const origin = compose.services.origin;
  assert.equal(origin.image, compose.services.node.image);
  assert.deepEqual(origin.entrypoint, ['node', 'dist/node/example-origin.js']);
});

test('Dockerfile: multi-stage on node:20-slim, non-root, healthcheck without curl, the ports', () => {
  const froms = dockerfile.match(/^FROM .*/gm) ?? [];
  assert.ok(froms.length >= 2, 'multi-stage');
  for (const f of froms) assert.match(f, /^FROM node:20-slim/);
  assert.match(dockerfile, /^USER node$/m);
  assert.match(dockerfile, /^HEALTHCHECK .*node", "-e", .*\/healthz/ms);
  const healthcheck = /^HEALTHCHECK[^\n]*(\\\n[^\n]*)*/m.exec(dockerfile)?.[0] ?? '';
  assert.doesNotMatch(healthcheck, /curl|wget/, 'the slim image has neither');
  assert.match(dockerfile, /^EXPOSE 8080 9090 7946\/udp 7946\/tcp 11211$/m);
  // The launcher (test/node/launcher.test.ts), which sets glibc's mmap threshold: not a second ENV copy of it.
  assert.match(dockerfile, /^ENTRYPOINT \["bin\/gossipcache"\]$/m);
  assert.match(dockerfile, /^COPY bin \.\/bin$/m);
  assert.doesNotMatch(dockerfile, /MALLOC_MMAP_THRESHOLD_/);
});
