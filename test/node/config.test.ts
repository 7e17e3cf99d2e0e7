import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { MAX_TTL_MS } from '../../src/group.js';
import { DEFAULT_GRPC_LIMITS } from '../../src/grpc/limits.js';
import {
  ConfigError,
  type NodeConfig,
  OPTIONS,
  parseBindAddr,
  parseBytes,
  parseConfig,
  parseDuration,
  usage,
} from '../../src/node/config.js';
import { defaultGrpcMaxConnections } from '../../src/node/connections.js';
import { nodePorts, startCli, stopCli, waitHealthy } from '../support/cli-node.js';
import { waitFor } from '../support/wait.js';

const CLI = join(import.meta.dirname, '../../dist/cli.js');

function config(argv: string[], env: Record<string, string> = {}): NodeConfig {
  const r = parseConfig(argv, env);
  if (r.help) assert.fail('unexpected help');
  return r.config;
}

function configError(argv: string[], env: Record<string, string> = {}): ConfigError {
  try {
    parseConfig(argv, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

describe('config defaults', () => {
  test('no configuration gives the documented defaults', () => {
    const c = config([]);
    assert.deepEqual(c.httpAddr, { host: '0.0.0.0', port: 8080 });
    assert.deepEqual(c.grpcAddr, { host: '0.0.0.0', port: 9090 });
    assert.deepEqual(c.gossipAddr, { host: '0.0.0.0', port: 7946 });
    assert.deepEqual(c.groups, [
      {
        name: 'default',
        cacheBytes: 64 * 1024 * 1024,
        origin: 'demo:400ms',
        staleWhileRevalidateMs: 0,
        staleIfErrorMs: 0,
      },
    ]);
    assert.deepEqual(c.seeds, []);
    assert.deepEqual(c.secretKeys, []);
    assert.equal(c.tls, undefined);
    assert.equal(c.logLevel, 'info');
    assert.match(c.advertiseHost, /^\d+\.\d+\.\d+\.\d+$/);
  });

  test('a specific gRPC bind host is the default advertise host', () => {
    assert.equal(config(['--grpc-addr', '127.0.0.5:9000']).advertiseHost, '127.0.0.5');
  });
});

describe('config values', () => {
  test('environment variables and flags (the flag wins)', () => {
    const c = config(['--http-addr=127.0.0.1:1234', '--cache-bytes', '512KiB'], {
      GOSSIPCACHE_HTTP_ADDR: '0.0.0.0:9999',
      GOSSIPCACHE_GROUP: 'photos',
      GOSSIPCACHE_SEEDS: 'node, 10.0.0.7:7000 ,[fd00::1]:7001,fd00::2',
      GOSSIPCACHE_ADVERTISE_HOST: 'cache-1.local',
      GOSSIPCACHE_ORIGIN: 'http://backend:8000/items/{key}',
      LOG_LEVEL: 'DEBUG',
    });
    assert.deepEqual(c.httpAddr, { host: '127.0.0.1', port: 1234 });
    assert.equal(c.groups[0].name, 'photos');
    assert.equal(c.groups[0].cacheBytes, 512 * 1024);
    assert.equal(c.groups[0].origin, 'http://backend:8000/items/{key}');
    assert.deepEqual(c.seeds, ['node:7946', '10.0.0.7:7000', '[fd00::1]:7001', '[fd00::2]:7946']);
    assert.equal(c.advertiseHost, 'cache-1.local');
    assert.equal(c.logLevel, 'debug');
  });

  test('sizes', () => {
    assert.equal(parseBytes('1048576', 'X'), 1048576);
    assert.equal(parseBytes('512KiB', 'X'), 512 * 1024);
    assert.equal(parseBytes('64MiB', 'X'), 64 * 1024 ** 2);
    assert.equal(parseBytes('1GiB', 'X'), 1024 ** 3);
    assert.equal(parseBytes('1.5GiB', 'X'), 1.5 * 1024 ** 3);
    // Zero is a size, just not a usable one: say so rather than "not a size".
    assert.throws(() => parseBytes('0', 'X'), /X: must be more than 0 bytes, e\.g\. 64MiB \(got "0"\)/);
    assert.throws(() => parseBytes('0.1', 'X'), /X: must be more than 0 bytes/);
    for (const bad of ['', '-1', '64MB', '64 mb', 'lots', '1e9']) {
      assert.throws(
        () => parseBytes(bad, 'X'),
        /X: .* expected bytes like 64MiB, 512KiB, 1GiB or 1048576/,
        bad,
      );
    }
  });

  test('durations and addresses', () => {
    assert.equal(parseDuration('400ms', 'X'), 400);
    assert.equal(parseDuration('2s', 'X'), 2000);
    assert.equal(parseDuration('250', 'X'), 250);
    assert.throws(() => parseDuration('soon', 'X'), /expected e\.g\. 400ms/);
    assert.deepEqual(parseBindAddr(':80', 'X'), { host: '0.0.0.0', port: 80 });
    assert.deepEqual(parseBindAddr('[::1]:80', 'X'), { host: '::1', port: 80 });
    for (const bad of ['8080', 'host', 'host:99999', 'a b:1', 'host:-1']) {
      assert.throws(() => parseBindAddr(bad, 'X'), /X: .*expected host:port/, bad);
    }
  });

  test('host names may contain `_`, like seeds and every other address (src/address.ts)', () => {
    const c = config([], {
      GOSSIPCACHE_SEEDS: 'myapp_cache_1,myapp_cache_2:7000',
      GOSSIPCACHE_GRPC_ADDR: 'myapp_cache_1:9090',
      GOSSIPCACHE_ADVERTISE_HOST: 'myapp_cache_1',
    });
    assert.deepEqual(c.seeds, ['myapp_cache_1:7946', 'myapp_cache_2:7000']);
    assert.deepEqual(c.grpcAddr, { host: 'myapp_cache_1', port: 9090 });
    assert.equal(c.advertiseHost, 'myapp_cache_1');
  });

  test('secret keys go through the keyring parser', () => {
    const key = Buffer.alloc(32, 7);
    const c = config([], { GOSSIPCACHE_SECRET_KEY: `${key.toString('base64')},${key.toString('hex')}` });
    assert.deepEqual(c.secretKeys, [key, key]);
    const e = configError([], { GOSSIPCACHE_SECRET_KEY: 'c2hvcnQ=' });
    assert.equal(e.source, 'GOSSIPCACHE_SECRET_KEY');
  });

  test('gossip receiver binding: require by default, off/send for a rolling upgrade', () => {
    assert.equal(config([]).gossipReceiverBinding, 'require');
    assert.equal(config([], { GOSSIPCACHE_GOSSIP_RECEIVER_BINDING: 'off' }).gossipReceiverBinding, 'off');
    assert.equal(config(['--gossip-receiver-binding', 'SEND']).gossipReceiverBinding, 'send');
    const e = configError([], { GOSSIPCACHE_GOSSIP_RECEIVER_BINDING: 'maybe' });
    assert.equal(e.source, 'GOSSIPCACHE_GOSSIP_RECEIVER_BINDING');
    assert.match(e.message, /expected one of off, send, require/);
  });

  test('TLS needs cert and key, files must be readable', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gc-config-'));
    try {
      writeFileSync(join(dir, 'c.pem'), 'x');
      writeFileSync(join(dir, 'k.pem'), 'x');
      const c = config([], {
        GOSSIPCACHE_TLS_CERT: join(dir, 'c.pem'),
        GOSSIPCACHE_TLS_KEY: join(dir, 'k.pem'),
      });
      assert.deepEqual(c.tls, { certFile: join(dir, 'c.pem'), keyFile: join(dir, 'k.pem') });
      assert.equal(
        configError([], { GOSSIPCACHE_TLS_CERT: join(dir, 'c.pem') }).source,
        'GOSSIPCACHE_TLS_KEY',
      );
      const missing = configError([], {
        GOSSIPCACHE_TLS_CERT: join(dir, 'nope.pem'),
        GOSSIPCACHE_TLS_KEY: join(dir, 'k.pem'),
      });
      assert.match(missing.message, /^GOSSIPCACHE_TLS_CERT: cannot read .*ENOENT/);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test('several groups from a JSON file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gc-config-'));
    try {
      const file = join(dir, 'groups.json');
      writeFileSync(
        file,
        JSON.stringify({
          groups: [
            { name: 'a', cacheBytes: '1MiB' },
            { name: 'b', origin: 'demo:10ms' },
          ],
        }),
      );
      const none = { staleWhileRevalidateMs: 0, staleIfErrorMs: 0 };
      assert.deepEqual(config(['--config', file]).groups, [
        { name: 'a', cacheBytes: 1024 * 1024, origin: 'demo:400ms', ...none },
        { name: 'b', cacheBytes: 64 * 1024 * 1024, origin: 'demo:10ms', ...none },
      ]);
      writeFileSync(file, JSON.stringify({ groups: [{ name: 'a' }, { name: 'a' }] }));
      assert.match(configError(['--config', file]).message, /groups\[1\]\.name: "a" appears twice/);
      writeFileSync(file, '{');
      assert.match(configError([], { GOSSIPCACHE_CONFIG: file }).message, /^GOSSIPCACHE_CONFIG: cannot read/);
      // A misspelt key is an error, not a default used without a word.
      writeFileSync(file, JSON.stringify({ groups: [{ name: 'x', cachebytes: '1MiB' }] }));
      assert.match(
        configError(['--config', file]).message,
        /groups\[0\]\.cachebytes: unknown key; expected one of: name, cacheBytes, origin/,
      );
      writeFileSync(file, JSON.stringify({ group: [], groups: [{ name: 'x' }] }));
      assert.match(configError(['--config', file]).message, /\.group: unknown key; expected one of: groups$/);
      writeFileSync(file, JSON.stringify({ groups: ['x'] }));
      assert.match(configError(['--config', file]).message, /groups\[0\]: expected an object/);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test('default stale windows: flag or variable (the flag wins), clamped to a year, bad ones named', () => {
    const g = config(['--stale-while-revalidate', '30s'], {
      GOSSIPCACHE_STALE_WHILE_REVALIDATE: '5m',
      GOSSIPCACHE_STALE_IF_ERROR: '2m',
    }).groups[0];
    assert.equal(g.staleWhileRevalidateMs, 30_000);
    assert.equal(g.staleIfErrorMs, 120_000);
    assert.equal(config(['--stale-if-error=1500ms']).groups[0].staleIfErrorMs, 1500);
    assert.equal(config(['--stale-if-error', '250']).groups[0].staleIfErrorMs, 250);
    // Longer than a value can live: the longest a value can live, as the group clamps it (not Infinity).
    const huge = config([], { GOSSIPCACHE_STALE_WHILE_REVALIDATE: `${'9'.repeat(400)}m` }).groups[0];
    assert.equal(huge.staleWhileRevalidateMs, MAX_TTL_MS);
    for (const bad of ['-1s', '1h', 'soon', '5 s']) {
      const e = configError([], { GOSSIPCACHE_STALE_WHILE_REVALIDATE: bad });
      assert.equal(e.source, 'GOSSIPCACHE_STALE_WHILE_REVALIDATE');
      assert.match(e.message, /is not a duration; expected e\.g\. 400ms, 5s or 1m/);
    }
    assert.match(configError(['--stale-if-error', 'x']).message, /^--stale-if-error: "x" is not a duration/);
  });

  test('a groups file sets stale windows per group; the others take the flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gc-config-'));
    try {
      const file = join(dir, 'groups.json');
      writeFileSync(
        file,
        JSON.stringify({
          groups: [{ name: 'a', staleWhileRevalidate: '1m', staleIfError: 0 }, { name: 'b' }],
        }),
      );
      const [a, b] = config([
        '--config',
        file,
        '--stale-while-revalidate=10s',
        '--stale-if-error=20s',
      ]).groups;
      assert.deepEqual([a.staleWhileRevalidateMs, a.staleIfErrorMs], [60_000, 0]);
      assert.deepEqual([b.staleWhileRevalidateMs, b.staleIfErrorMs], [10_000, 20_000]);
      writeFileSync(file, JSON.stringify({ groups: [{ name: 'a' }, { name: 'b', staleIfError: '1 day' }] }));
      assert.match(
        configError(['--config', file]).message,
        /groups\[1\]\.staleIfError: "1 day" is not a duration/,
      );
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test('errors name the variable, or the flag when a flag carried the value', () => {
    assert.equal(configError([], { GOSSIPCACHE_GRPC_ADDR: 'nope' }).source, 'GOSSIPCACHE_GRPC_ADDR');
    assert.equal(configError(['--grpc-addr', 'nope']).source, '--grpc-addr');
    assert.match(
      configError([], { GOSSIPCACHE_ORIGIN: 'ftp://x/{key}' }).message,
      /expected demo\[:<delay>\] or an http/,
    );
    assert.match(configError([], { GOSSIPCACHE_ORIGIN: 'http://x/items' }).message, /has no \{key\} slot/);
    // The key must land in the request target: not the host, and not a fragment (never sent).
    for (const t of ['http://{key}.example/x', 'http://x/items#{key}', 'http://u:{key}@x/']) {
      assert.match(configError([], { GOSSIPCACHE_ORIGIN: t }).message, /in the path or the query/, t);
    }
    assert.match(
      configError([], { GOSSIPCACHE_ORIGIN_CONNECTIONS: '0' }).message,
      /^GOSSIPCACHE_ORIGIN_CONNECTIONS: "0" is not a count/,
    );
    assert.match(configError([], { GOSSIPCACHE_GROUP: '_stats' }).message, /not a group name/);
    assert.match(configError([], { LOG_LEVEL: 'loud' }).message, /^LOG_LEVEL: "loud" is not a level/);
    assert.match(
      configError([], { GOSSIPCACHE_SEEDS: 'a b' }).message,
      /^GOSSIPCACHE_SEEDS: "a b" is not a seed/,
    );
    assert.match(configError(['--bogus']).message, /unknown argument/);
    assert.match(configError(['--seeds']).message, /needs a value/);
  });

  test('docs/node.md has a table row for every variable, with its flag and default', () => {
    // Biome pads table cells; compare with runs of spaces collapsed.
    const doc = readFileSync(join(import.meta.dirname, '../../docs/node.md'), 'utf8').replace(/ {2,}/g, ' ');
    for (const o of OPTIONS) {
      const row = `| \`${o.env}\` | \`${o.flag}\` | ${o.default ? `\`${o.default}\`` : '—'} |`;
      assert.ok(doc.includes(row), `docs/node.md lacks: ${row}`);
    }
  });

  test('--help lists every variable', () => {
    assert.deepEqual(parseConfig(['--help'], {}), { help: true });
    for (const v of ['GOSSIPCACHE_HTTP_ADDR', 'GOSSIPCACHE_CACHE_BYTES', 'GOSSIPCACHE_TLS_CA', 'LOG_LEVEL']) {
      assert.ok(usage().includes(v), v);
    }
  });
});

describe('config: GOSSIPCACHE_* variables that name no option', () => {
  test('are listed (the node warns at start); Kubernetes service links for a Service named gossipcache are not', () => {
    const c = config([], {
      GOSSIPCACHE_CACHE_BYTE: '1GiB',
      GOSSIPCACHE_SEED: 'a:7946',
      GOSSIPCACHE_HTTP_ADDR: '127.0.0.1:8080',
      GOSSIPCACHE_SERVICE_HOST: '10.0.0.1',
      GOSSIPCACHE_SERVICE_PORT: '8080',
      GOSSIPCACHE_SERVICE_PORT_HTTP: '8080',
      GOSSIPCACHE_PORT: 'tcp://10.0.0.1:8080',
      GOSSIPCACHE_PORT_8080_TCP: 'tcp://10.0.0.1:8080',
      GOSSIPCACHE_PORT_8080_TCP_PROTO: 'tcp',
      GOSSIPCACHE_HEADLESS_SERVICE_HOST: '10.0.0.2',
      GOSSIPCACHE_IMAGE: 'gossipcache:latest',
      OTHER_THING: 'x',
    });
    assert.deepEqual(c.unknownEnv, ['GOSSIPCACHE_CACHE_BYTE', 'GOSSIPCACHE_SEED']);
    assert.deepEqual(config([], {}).unknownEnv, []);
  });

  test('the node says so in a warning at start, and starts', async () => {
    const node = startCli(await nodePorts(), { GOSSIPCACHE_CACHE_BYTE: '1GiB' });
    try {
      await waitHealthy(node);
      await waitFor('the warning', () =>
        /ignored: GOSSIPCACHE_CACHE_BYTE \(no such option/.test(node.output()),
      );
    } finally {
      await stopCli(node);
    }
  });
});

describe('the CLI on bad configuration', () => {
  function run(args: string[], env: Record<string, string>) {
    return spawnSync(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH, ...env },
      encoding: 'utf8',
      timeout: 20_000,
    });
  }

  test('exits 2 with one line naming the variable and the expected form', () => {
    const r = run([], { GOSSIPCACHE_CACHE_BYTES: 'lots' });
    assert.equal(r.status, 2);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      'gossipcache: invalid configuration: GOSSIPCACHE_CACHE_BYTES: "lots" is not a size; expected bytes like 64MiB, 512KiB, 1GiB or 1048576\n',
    );
  });

  test('names the flag when the flag is wrong', () => {
    const r = run(['--http-addr', 'localhost'], {});
    assert.equal(r.status, 2);
    assert.equal(r.stderr.split('\n').length, 2, r.stderr);
    assert.match(
      r.stderr,
      /^gossipcache: invalid configuration: --http-addr: "localhost" is not an address; expected host:port/,
    );
  });

  test('--version prints the package version', () => {
    const r = run(['--version'], {});
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^gossipcache \d+\.\d+\.\d+\n$/);
  });

  test('--help prints the table and exits 0', () => {
    const r = run(['--help'], {});
    assert.equal(r.status, 0);
    assert.match(r.stdout, /GOSSIPCACHE_ORIGIN/);
  });
});

describe('config: gRPC limits', () => {
  test('defaults are the library defaults (the connection cap from the fd limit); each is settable and validated', () => {
    assert.deepEqual(config([]).grpcLimits, {
      ...DEFAULT_GRPC_LIMITS,
      maxConnections: defaultGrpcMaxConnections(),
    });
    const c = config(['--grpc-max-streams', '8', '--grpc-max-held-bytes=1GiB', '--grpc-stall-timeout=2s'], {
      GOSSIPCACHE_GRPC_MAX_STREAM_REQUESTS: '100',
      GOSSIPCACHE_GRPC_MAX_CONNECTION_BYTES: '4MiB',
      GOSSIPCACHE_GRPC_MAX_FETCH_STREAMS: '3',
      GOSSIPCACHE_GRPC_MAX_CONNECTIONS: '20',
    });
    assert.deepEqual(c.grpcLimits, {
      maxConcurrentStreams: 8,
      maxStreamRequests: 100,
      maxConnectionBytes: 4 * 1024 * 1024,
      maxHeldBytes: 1024 ** 3,
      maxFetchStreams: 3,
      stallTimeoutMs: 2000,
      maxConnections: 20,
    });
    // A quarter of the fds beyond 256, between 64 and 1024.
    assert.equal(defaultGrpcMaxConnections(1024), 192);
    assert.equal(defaultGrpcMaxConnections(256), 64);
    assert.equal(defaultGrpcMaxConnections(1 << 20), 1024);
    assert.match(
      configError(['--grpc-stall-timeout=0']).message,
      /^--grpc-stall-timeout: must be more than 0/,
    );
    assert.match(configError(['--grpc-max-streams=0']).message, /^--grpc-max-streams: "0" is not a count/);
    assert.match(
      configError([], { GOSSIPCACHE_GRPC_MAX_CONNECTION_BYTES: 'lots' }).message,
      /^GOSSIPCACHE_GRPC_MAX_CONNECTION_BYTES: "lots" is not a size/,
    );
  });
});
