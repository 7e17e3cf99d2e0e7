// deploy/kubernetes/: every manifest is checked offline against the Kubernetes API schemas, twice:
//   - kubernetes-models' validators (compiled from the API's OpenAPI schemas): types, required fields,
//     formats, enums;
//   - its TypeScript interfaces, by type-checking each manifest as an object literal: the OpenAPI schemas
//     allow unknown fields (the API server drops them, silently without --validate=strict), so only
//     TypeScript's excess-property check catches a misspelt field like `protocl`.
// Then the invariants between the manifests, the image and the node's own configuration: the seed name is
// the headless Service, ports agree with the config defaults and the Dockerfile, the grace period covers
// preStop + the node's shutdown timeout, memory follows the documented formula, every env var is one the
// node reads, and the probes hit routes the HTTP front serves.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { OPTIONS, parseBindAddr, parseBytes, parseDuration } from '../../src/node/config.js';
import { createHttpFront } from '../../src/node/http.js';
import { listenLocal } from '../support/http.js';

const ROOT = join(import.meta.dirname, '../..');
const DIR = join(ROOT, 'deploy/kubernetes');

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML, walked by the assertions that check its shape
type Obj = Record<string, any>;

interface Manifest {
  file: string;
  doc: Obj;
}

function loadManifests(): Manifest[] {
  const out: Manifest[] = [];
  for (const file of readdirSync(DIR).sort()) {
    if (!file.endsWith('.yaml') || file === 'kustomization.yaml') continue;
    for (const d of parseAllDocuments(readFileSync(join(DIR, file), 'utf8'))) {
      assert.equal(d.errors.length, 0, `${file}: ${d.errors.join('; ')}`);
      const doc = d.toJS();
      if (doc !== null) out.push({ file, doc });
    }
  }
  return out;
}

const manifests = loadManifests();
const kustomization = parseAllDocuments(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8'))[0].toJS();

function only(kind: string, pred: (d: Obj) => boolean = () => true): Obj {
  const found = manifests.filter((m) => m.doc.kind === kind && pred(m.doc));
  assert.equal(found.length, 1, `expected one ${kind}, found ${found.length}`);
  return found[0].doc;
}

const deployment = only('Deployment');
const podSpec: Obj = deployment.spec.template.spec;
const container: Obj = podSpec.containers[0];
const podLabels: Obj = deployment.spec.template.metadata.labels;
const headless = only('Service', (d) => d.spec.clusterIP === 'None');
const clientService = only('Service', (d) => d.spec.clusterIP !== 'None');

/** The container's env as name → literal value (valueFrom entries map to undefined). */
const env = new Map<string, string | undefined>(container.env.map((e: Obj) => [e.name, e.value]));

/** The effective raw value of a node option: the manifest's env, else the default in config.ts. */
function setting(envName: string): string {
  const o = OPTIONS.find((x) => x.env === envName);
  assert.ok(o, `${envName} is not an option in src/node/config.ts`);
  return env.get(envName) ?? o.default;
}

function containerPort(name: string): Obj {
  const p = container.ports.find((x: Obj) => x.name === name);
  assert.ok(p, `the container has no port named ${name}`);
  return p;
}

/** kubernetes-models class for an apiVersion/kind, e.g. apps/v1 Deployment. */
async function modelClass(apiVersion: string, kind: string): Promise<new (doc: Obj) => { validate(): void }> {
  const mod = await import(`kubernetes-models/${apiVersion}`);
  assert.ok(mod[kind], `kubernetes-models has no ${apiVersion} ${kind}`);
  return mod[kind];
}

describe('deploy/kubernetes manifests', () => {
  test('the kustomization lists exactly the manifests in the folder', () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    assert.deepEqual([...kustomization.resources].sort(), files.sort());
    assert.equal(kustomization.kind, 'Kustomization');
    assert.ok(
      kustomization.images.some((i: Obj) => i.name === container.image),
      'image is set by kustomize',
    );
  });

  test('every manifest passes the Kubernetes API schema validators', async () => {
    assert.ok(manifests.length >= 5);
    for (const { file, doc } of manifests) {
      const Model = await modelClass(doc.apiVersion, doc.kind);
      assert.doesNotThrow(() => new Model(doc).validate(), `${file} ${doc.kind}`);
    }
  });

  test('the validators reject a broken manifest (the check above can fail)', async () => {
    const Model = await modelClass('apps/v1', 'Deployment');
    const broken = structuredClone(deployment);
    broken.spec.template.spec.containers[0].ports[0].containerPort = 'eighty';
    assert.throws(() => new Model(broken).validate(), /containerPort/);
  });

  test('every field is one the API knows (TypeScript excess-property check)', () => {
    // Written under node_modules so `kubernetes-models` resolves and no project tool picks the file up.
    const dir = join(ROOT, 'node_modules/.cache/gossipcache-k8s-check');
    mkdirSync(dir, { recursive: true });
    const typecheck = (docs: Manifest[]) => {
      const lines: string[] = [];
      docs.forEach(({ doc }, i) => {
        const [group, version] = doc.apiVersion.includes('/')
          ? doc.apiVersion.split('/')
          : ['', doc.apiVersion];
        const from = group === '' ? version : `${group}/${version}`;
        lines.push(`import type { I${doc.kind} as T${i} } from 'kubernetes-models/${from}';`);
        lines.push(`export const m${i}: T${i} = ${JSON.stringify(doc)};`);
      });
      const file = join(dir, 'manifests.ts');
      writeFileSync(file, lines.join('\n') + '\n');
      const r = spawnSync(
        join(ROOT, 'node_modules/.bin/tsc'),
        [
          '--ignoreConfig',
          '--noEmit',
          '--strict',
          '--skipLibCheck',
          '--module',
          'nodenext',
          '--target',
          'es2022',
          file,
        ],
        { encoding: 'utf8', cwd: ROOT },
      );
      return { status: r.status, out: r.stdout + r.stderr };
    };
    try {
      const ok = typecheck(manifests);
      assert.equal(ok.status, 0, ok.out);
      // And the same check fails on a misspelt field.
      const typo = structuredClone(headless);
      typo.spec.ports[0].protocl = typo.spec.ports[0].protocol;
      delete typo.spec.ports[0].protocol;
      const bad = typecheck([{ file: 'typo', doc: typo }]);
      assert.notEqual(bad.status, 0);
      assert.match(bad.out, /protocl/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the seed list is the headless Service, which publishes pods before they are ready', () => {
    const seeds = setting('GOSSIPCACHE_SEEDS').split(',');
    assert.equal(seeds.length, 1);
    // `name`, `name.<namespace>…` or with `:port`.
    assert.equal(seeds[0].split(/[.:]/)[0], headless.metadata.name);
    assert.equal(headless.spec.publishNotReadyAddresses, true);
    const gossipPort = parseBindAddr(setting('GOSSIPCACHE_GOSSIP_ADDR'), 'gossip').port;
    for (const proto of ['UDP', 'TCP']) {
      assert.ok(
        headless.spec.ports.some((p: Obj) => p.port === gossipPort && p.protocol === proto),
        `the headless Service publishes gossip ${proto} ${gossipPort}`,
      );
    }
  });

  test('every selector picks the Deployment’s pods', () => {
    const labels = deployment.spec.selector.matchLabels;
    for (const [k, v] of Object.entries(labels)) assert.equal(podLabels[k], v);
    assert.deepEqual(headless.spec.selector, labels);
    assert.deepEqual(clientService.spec.selector, labels);
    assert.deepEqual(only('PodDisruptionBudget').spec.selector.matchLabels, labels);
    assert.deepEqual(only('NetworkPolicy').spec.podSelector.matchLabels, labels);
  });

  test('container ports agree with the node’s configuration and the image', () => {
    const expose =
      /^EXPOSE (.+)$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))?.[1].split(/\s+/) ?? [];
    const exposed = (port: number, proto: string) =>
      expose.includes(proto === 'TCP' ? String(port) : `${port}/${proto.toLowerCase()}`) ||
      expose.includes(`${port}/${proto.toLowerCase()}`);
    const pairs: [string, string, string][] = [
      ['http', 'GOSSIPCACHE_HTTP_ADDR', 'TCP'],
      ['grpc', 'GOSSIPCACHE_GRPC_ADDR', 'TCP'],
      ['gossip', 'GOSSIPCACHE_GOSSIP_ADDR', 'UDP'],
      ['gossip-tcp', 'GOSSIPCACHE_GOSSIP_ADDR', 'TCP'],
    ];
    for (const [name, envName, proto] of pairs) {
      const port = parseBindAddr(setting(envName), envName).port;
      const p = containerPort(name);
      assert.equal(p.containerPort, port, `${name}: container port vs ${envName}`);
      assert.equal(p.protocol, proto, name);
      assert.ok(exposed(port, proto), `Dockerfile EXPOSEs ${port}/${proto}`);
    }
    // Every port a Service or the NetworkPolicy names is a container port with the same protocol.
    for (const svc of [headless, clientService]) {
      for (const sp of svc.spec.ports) {
        const p = containerPort(sp.targetPort);
        assert.equal(p.protocol, sp.protocol, `${svc.metadata.name} ${sp.name}`);
      }
    }
    for (const rule of only('NetworkPolicy').spec.ingress) {
      for (const np of rule.ports) assert.equal(containerPort(np.port).protocol, np.protocol, np.port);
    }
  });

  test('the memcached port is the one the node listens on (GOSSIPCACHE_MEMCACHED_ADDR)', () => {
    const port = parseBindAddr(setting('GOSSIPCACHE_MEMCACHED_ADDR'), 'GOSSIPCACHE_MEMCACHED_ADDR').port;
    assert.equal(containerPort('memcached').containerPort, port);
  });

  test('the client Service offers HTTP, gRPC and memcached', () => {
    const names = clientService.spec.ports.map((p: Obj) => p.name).sort();
    assert.deepEqual(names, ['grpc', 'http', 'memcached']);
  });

  test('every env var is one the node reads (src/node/config.ts)', () => {
    const known = new Set(OPTIONS.map((o) => o.env));
    for (const name of env.keys()) assert.ok(known.has(name), `${name} is not read by the node`);
  });

  test('the handoff push fits in the shutdown timeout, with room to leave and drain', () => {
    const pushMs = parseDuration(setting('GOSSIPCACHE_HANDOFF_PUSH'), 'handoff push');
    const shutdownMs = parseDuration(setting('GOSSIPCACHE_SHUTDOWN_TIMEOUT'), 'shutdown');
    assert.ok(pushMs > 0 && pushMs <= shutdownMs - 5000, `push ${pushMs} ms vs shutdown ${shutdownMs} ms`);
  });

  test('the grace period covers preStop and the node’s shutdown timeout', () => {
    const preStopS = container.lifecycle.preStop.sleep.seconds;
    const shutdownMs = parseDuration(setting('GOSSIPCACHE_SHUTDOWN_TIMEOUT'), 'shutdown');
    assert.ok(preStopS > 0);
    assert.ok(
      podSpec.terminationGracePeriodSeconds * 1000 >= preStopS * 1000 + shutdownMs + 5000,
      `grace ${podSpec.terminationGracePeriodSeconds}s < preStop ${preStopS}s + shutdown ${shutdownMs}ms + 5s`,
    );
  });

  test('probes: readiness on /readyz, liveness on /healthz, routes the front serves', async () => {
    assert.equal(container.readinessProbe.httpGet.path, '/readyz');
    assert.equal(container.livenessProbe.httpGet.path, '/healthz');
    for (const probe of [container.readinessProbe, container.livenessProbe]) {
      assert.equal(
        containerPort(probe.httpGet.port).containerPort,
        parseBindAddr(setting('GOSSIPCACHE_HTTP_ADDR'), 'http').port,
      );
    }
    // The front: /readyz follows `ready` (503 while joining or shutting down), /healthz is always 200.
    let ready = false;
    const front = createHttpFront({ registry: { get: () => undefined, list: () => [] }, ready: () => ready });
    const base = await listenLocal(front);
    try {
      assert.equal((await fetch(`${base}/readyz`)).status, 503);
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      ready = true;
      assert.equal((await fetch(`${base}/readyz`)).status, 200);
    } finally {
      front.close();
    }
  });

  test('memory = 128 MiB + 2 x cacheBytes, requested and limited alike (docs/kubernetes.md)', () => {
    const cacheBytes = parseBytes(setting('GOSSIPCACHE_CACHE_BYTES'), 'cacheBytes');
    const expected = 128 * 2 ** 20 + 2 * cacheBytes;
    const quantity = (q: string) => {
      const m = /^(\d+)(Ki|Mi|Gi)$/.exec(q);
      assert.ok(m, `memory quantity ${q} in Ki/Mi/Gi`);
      return Number(m[1]) * { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 }[m[2] as 'Ki' | 'Mi' | 'Gi'];
    };
    assert.equal(quantity(container.resources.requests.memory), expected);
    assert.equal(quantity(container.resources.limits.memory), expected);
  });

  test('non-root, read-only, no privileges; the user is the image’s', () => {
    const user = /^USER (\S+)$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))?.[1];
    assert.equal(user, 'node'); // uid 1000 in the node images
    assert.equal(podSpec.securityContext.runAsNonRoot, true);
    assert.equal(podSpec.securityContext.runAsUser, 1000);
    const sc = container.securityContext;
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.equal(sc.allowPrivilegeEscalation, false);
    assert.deepEqual(sc.capabilities.drop, ['ALL']);
  });

  test('the gossip key and the TLS files come from Secrets', () => {
    const key = container.env.find((e: Obj) => e.name === 'GOSSIPCACHE_SECRET_KEY');
    assert.ok(key.valueFrom.secretKeyRef.name);
    const secretMounts = container.volumeMounts.filter((vm: Obj) =>
      podSpec.volumes.some((v: Obj) => v.name === vm.name && v.secret),
    );
    for (const name of ['GOSSIPCACHE_TLS_CERT', 'GOSSIPCACHE_TLS_KEY', 'GOSSIPCACHE_TLS_CA']) {
      const path = env.get(name) ?? '';
      assert.ok(
        secretMounts.some((vm: Obj) => path.startsWith(`${vm.mountPath}/`)),
        `${name}=${path} is in a Secret volume`,
      );
    }
  });

  test('the NetworkPolicy admits gossip and gRPC only from the cache pods', () => {
    const np = only('NetworkPolicy');
    const grpcOrGossip = new Set(['gossip', 'gossip-tcp']);
    for (const rule of np.spec.ingress) {
      const ports = rule.ports.map((p: Obj) => p.port);
      const fromCachePods = rule.from.every((f: Obj) => f.podSelector && !f.namespaceSelector && !f.ipBlock);
      if (ports.some((p: string) => grpcOrGossip.has(p))) {
        assert.ok(fromCachePods);
        for (const f of rule.from) assert.deepEqual(f.podSelector.matchLabels, podLabels);
      }
      if (ports.includes('grpc')) {
        // Cache pods, or pods that opted in as clients, in this namespace only.
        assert.ok(fromCachePods, 'gRPC only from pods of this namespace');
        for (const f of rule.from) assert.ok(Object.keys(f.podSelector.matchLabels ?? {}).length > 0);
      }
    }
  });
});
