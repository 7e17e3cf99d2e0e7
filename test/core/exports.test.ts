// The package's entry points (package.json "exports"), as a user imports them: built files (dist/),
// resolved by name in a fresh process. The core entry must not load the network layers: a user who
// only wants a local read-through cache should not pay for grpc-js and gossip at startup.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const ROOT = join(import.meta.dirname, '../..');

// Runs in the child: records every module URL the ESM loader resolves (a resolve hook posts it back),
// imports `specifier`, then prints the loaded URLs, the CommonJS modules loaded (grpc-js is CommonJS),
// and the names the entry exports.
const CHILD = `
import { createRequire, register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
const hook = \`
let port;
export function initialize(data) { port = data.port; }
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  port.postMessage(specifier === 'gossipcache-test:flush' ? 'flush' : r.url);
  return r;
}\`;
const { port1, port2 } = new MessageChannel();
const urls = [];
const flushed = new Promise((resolve) =>
  port1.on('message', (u) => (u === 'flush' ? resolve() : urls.push(u))),
);
register('data:text/javascript,' + encodeURIComponent(hook), { data: { port: port2 }, transferList: [port2] });
const api = await import(process.env.ENTRY);
try { import.meta.resolve('gossipcache-test:flush'); } catch {}
await flushed;
port1.close();
const cjs = Object.keys(createRequire(import.meta.url).cache);
process.stdout.write(JSON.stringify({ urls, cjs, names: Object.keys(api) }));
`;

interface Loaded {
  /** ESM modules resolved, as file:// URLs. */
  urls: string[];
  /** CommonJS modules loaded (paths). */
  cjs: string[];
  names: string[];
}

function load(entry: string): Loaded {
  assert.ok(existsSync(join(ROOT, 'dist/index.js')), 'dist/ is not built: run `npm run build` first');
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', CHILD], {
    cwd: ROOT,
    env: { ...process.env, ENTRY: entry, NODE_OPTIONS: '' },
    encoding: 'utf8',
  });
  return JSON.parse(out) as Loaded;
}

/** Everything a load touched, as one list of paths/URLs. */
const everything = (l: Loaded) => [...l.urls, ...l.cjs];
const loadsGrpc = (l: Loaded) => everything(l).some((u) => u.includes('/node_modules/@grpc/'));
const loadsOwn = (l: Loaded, dir: string) => l.urls.some((u) => u.includes(`/dist/${dir}/`));

describe('package entry points', () => {
  it("'gossipcache' is the core: Group and friends, without gRPC, membership or the node program", () => {
    const l = load('gossipcache');
    assert.ok(
      l.urls.some((u) => u.endsWith('/dist/index.js')),
      'resolved to dist/index.js',
    );
    for (const name of ['Group', 'GroupRegistry', 'defaultRegistry', 'NotFoundError', 'noPeers']) {
      assert.ok(l.names.includes(name), `exports ${name}`);
    }
    assert.equal(loadsGrpc(l), false, `grpc-js loaded by the core entry: ${everything(l).join('\n')}`);
    for (const dir of ['grpc', 'membership', 'cluster', 'node']) {
      assert.equal(loadsOwn(l, dir), false, `dist/${dir}/ loaded by the core entry`);
    }
  });

  it("'gossipcache/cluster' is createNode, and it does load gRPC and membership", () => {
    const l = load('gossipcache/cluster');
    assert.ok(l.names.includes('createNode'));
    // The same probe that finds nothing above finds them here: it can see what it checks for.
    assert.equal(loadsGrpc(l), true);
    assert.equal(loadsOwn(l, 'membership'), true);
    assert.equal(loadsOwn(l, 'node'), false, 'the library does not load the node program');
  });

  it("'gossipcache/grpc' and 'gossipcache/membership' are the layers docs/grpc.md and docs/membership.md describe", () => {
    const grpc = load('gossipcache/grpc');
    for (const name of ['createGrpcServer', 'GrpcPeer', 'RingPeerPicker', 'PeerError']) {
      assert.ok(grpc.names.includes(name), `gossipcache/grpc exports ${name}`);
    }
    const membership = load('gossipcache/membership');
    assert.ok(membership.names.includes('createMembership'));
    assert.equal(loadsGrpc(membership), false, 'gossip does not need gRPC');
  });
});

describe('the names the docs import', () => {
  // Every `import { … } from 'gossipcache…'` in a code block of README.md and docs/*.md must resolve: a
  // new user copies these first. Values are checked against what the built entry really exports, types
  // against its declaration file.
  it('are exported by the entry they are imported from', () => {
    const files = ['README.md', ...readdirSync(join(ROOT, 'docs')).map((f) => `docs/${f}`)].filter((f) =>
      f.endsWith('.md'),
    );
    const wanted = new Map<string, Set<string>>(); // entry → names
    let blocks = 0;
    for (const f of files) {
      const text = readFileSync(join(ROOT, f), 'utf8');
      for (const block of text.matchAll(/```(?:ts|js|typescript|javascript)\n([\s\S]*?)```/g)) {
        for (const m of block[1].matchAll(
          /import\s+(?:type\s+)?\{([^}]*)\}\s+from\s+'(gossipcache(?:\/[a-z]+)?)'/g,
        )) {
          blocks++;
          const names = wanted.get(m[2]) ?? new Set<string>();
          for (const part of m[1].split(',')) {
            const name = part
              .trim()
              .replace(/^type\s+/, '')
              .split(/\s+as\s+/)[0];
            if (name) names.add(`${name}\t${f}`);
          }
          wanted.set(m[2], names);
        }
      }
    }
    assert.ok(blocks >= 5, `found the docs' imports (${blocks})`);
    for (const [entry, names] of wanted) {
      const runtime = new Set(load(entry).names);
      const sub = entry.split('/')[1];
      const dts = readFileSync(join(ROOT, 'dist', sub ?? '', 'index.d.ts'), 'utf8');
      for (const item of names) {
        const [name, file] = item.split('\t');
        const typed = new RegExp(
          `export (?:declare )?(?:type|interface|class|function|const) ${name}\\b|export (?:type )?\\{[^}]*\\b${name}\\b`,
        ).test(dts);
        assert.ok(
          runtime.has(name) || typed,
          `${file} imports ${name} from '${entry}', which does not export it`,
        );
      }
    }
  });
});
