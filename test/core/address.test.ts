// The one `host:port` grammar (src/address.ts), as seeds, bind addresses and peers' addresses use it.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AddressError, formatHostPort, isHost, parseHostPort } from '../../src/address.js';

/** How seeds are read: the gossip port when none is given. */
const seed = (s: string) => parseHostPort(s, { defaultPort: 7946 });

describe('parseHostPort', () => {
  it('parses names, IPv4 and IPv6 with and without ports', () => {
    assert.deepEqual(seed('cache-1:7000'), { host: 'cache-1', port: 7000 });
    assert.deepEqual(seed('cache-1'), { host: 'cache-1', port: 7946 });
    assert.deepEqual(seed('10.0.0.5:80'), { host: '10.0.0.5', port: 80 });
    assert.deepEqual(seed('[fd00::1]:7000'), { host: 'fd00::1', port: 7000 });
    assert.deepEqual(seed('[::1]'), { host: '::1', port: 7946 });
    assert.deepEqual(seed('fd00::1'), { host: 'fd00::1', port: 7946 });
    assert.deepEqual(seed(' db.example.com.:1 '), { host: 'db.example.com.', port: 1 });
    assert.deepEqual(seed('0.0.0.0:0'), { host: '0.0.0.0', port: 0 });
  });

  it('uses the given default port, or requires one', () => {
    assert.deepEqual(parseHostPort('a', { defaultPort: 9000 }), { host: 'a', port: 9000 });
    assert.throws(() => parseHostPort('a'), /missing port/);
    assert.throws(() => parseHostPort('fd00::1'), /missing port/);
  });

  it('reads `:port` as every interface only when the caller names the host for it', () => {
    assert.deepEqual(parseHostPort(':80', { anyHost: '0.0.0.0' }), { host: '0.0.0.0', port: 80 });
    assert.throws(() => parseHostPort(':80'), /missing host/);
    assert.throws(() => parseHostPort(':', { anyHost: '0.0.0.0' }), /not a number/);
  });

  it('accepts `_` in names (Docker Compose container names, SRV-style names) in every address', () => {
    assert.deepEqual(seed('cache_1'), { host: 'cache_1', port: 7946 });
    assert.deepEqual(parseHostPort('myapp_cache_1:9090'), { host: 'myapp_cache_1', port: 9090 });
    assert.deepEqual(seed('_gossip._udp.cache.svc:7946'), { host: '_gossip._udp.cache.svc', port: 7946 });
    assert.equal(isHost('cache_1'), true);
  });

  it('refuses what is not a DNS name or an IP address', () => {
    for (const host of [
      'a b',
      'a..b',
      '-',
      'é.com',
      'a/b',
      `${'a'.repeat(64)}.com`,
      `${'a.'.repeat(127)}aa`,
    ]) {
      assert.equal(isHost(host), false, host);
      assert.throws(() => seed(`${host}:1`), /not a valid host/, host);
    }
    assert.equal(isHost('fd00::1'), true);
    assert.equal(isHost('10.1.2.3'), true);
  });

  it('rejects bad input with a message naming it and the expected form', () => {
    for (const [input, why] of [
      ['', /empty/],
      [':7946', /missing host/],
      ['host:abc', /not a number/],
      ['host:70000', /out of range/],
      ['fd00::1:7946x', /brackets/],
      ['[fd00::1', /missing "]"/],
      ['[nope]:1', /not an IPv6/],
      ['bad host:1', /not a valid host/],
      ['[::1]x', /unexpected text/],
    ] as const) {
      assert.throws(
        () => seed(input),
        (e: Error) =>
          e instanceof AddressError &&
          why.test(e.message) &&
          e.message.includes(`"${input}"`) &&
          /host\[:port\]/.test(e.message),
        input,
      );
    }
    assert.throws(() => parseHostPort('a'), /expected host:port,/);
  });

  it('formats IPv6 with brackets', () => {
    assert.equal(formatHostPort({ host: '::1', port: 5 }), '[::1]:5');
    assert.equal(formatHostPort({ host: 'a', port: 5 }), 'a:5');
  });
});
