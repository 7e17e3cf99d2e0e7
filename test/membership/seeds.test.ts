import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Lookup, parseSeeds, resolveSeeds } from '../../src/membership/seeds.js';

describe('parseSeeds', () => {
  it('accepts a comma/space separated string or an array', () => {
    assert.deepEqual(parseSeeds('a, b:1  c'), [
      { host: 'a', port: 7946 },
      { host: 'b', port: 1 },
      { host: 'c', port: 7946 },
    ]);
    assert.deepEqual(parseSeeds(['x:2', '']), [{ host: 'x', port: 2 }]);
    assert.deepEqual(parseSeeds(undefined), []);
  });

  it('refuses port 0 for a seed', () => {
    assert.throws(() => parseSeeds('a:0'), /port 0/);
  });
});

describe('resolveSeeds', () => {
  it('expands a name to every address it resolves to, keeping IPs and ports', async () => {
    const lookup: Lookup = async (host) => {
      assert.equal(host, 'cache');
      return [
        { address: '10.0.0.1', family: 4 },
        { address: '10.0.0.2', family: 4 },
        { address: '10.0.0.3', family: 4 },
      ];
    };
    const out = await resolveSeeds(['cache:7000', '10.0.0.9', '10.0.0.2:7000'], { lookup });
    assert.deepEqual(out, ['10.0.0.1:7000', '10.0.0.2:7000', '10.0.0.3:7000', '10.0.0.9:7946']);
  });

  it('resolves localhost with the real resolver', async () => {
    const out = await resolveSeeds(['localhost:7001'], { family: 4 });
    assert.deepEqual(out, ['127.0.0.1:7001']);
  });

  it('excludes this node and addresses of the other family', async () => {
    const lookup: Lookup = async (_h, family) =>
      [
        { address: '127.0.0.1', family: 4 },
        { address: '::1', family: 6 },
      ].filter((a) => family === 0 || a.family === family);
    const errors: string[] = [];
    const out = await resolveSeeds(['me:1', '[::1]:1', '127.0.0.2:1'], {
      lookup,
      family: 4,
      exclude: ['127.0.0.1:1'],
      onError: (s) => errors.push(s),
    });
    assert.deepEqual(out, ['127.0.0.2:1']);
    assert.deepEqual(errors, ['[::1]:1']);
  });

  it('never rejects: bad or unresolvable seeds are reported and skipped', async () => {
    const errors: [string, string][] = [];
    const lookup: Lookup = async (h) => {
      if (h === 'gone') throw Object.assign(new Error('getaddrinfo ENOTFOUND gone'), { code: 'ENOTFOUND' });
      if (h === 'empty') return [];
      return [{ address: '10.1.1.1', family: 4 }];
    };
    const out = await resolveSeeds(['gone', 'bad host', 'empty', 'ok:5'], {
      lookup,
      onError: (s, e) => errors.push([s, e.message]),
    });
    assert.deepEqual(out, ['10.1.1.1:5']);
    assert.deepEqual(errors.map(([s]) => s).sort(), ['bad host', 'empty', 'gone']);
    assert.match(errors.find(([s]) => s === 'gone')?.[1] ?? '', /ENOTFOUND/);
  });

  it('reports a name that really does not exist', async () => {
    const errors: string[] = [];
    const out = await resolveSeeds(['does-not-exist.invalid:1'], { onError: (s) => errors.push(s) });
    assert.deepEqual(out, []);
    assert.deepEqual(errors, ['does-not-exist.invalid:1']);
  });
});
