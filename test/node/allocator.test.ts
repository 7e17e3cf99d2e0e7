import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mmapThresholdWarning } from '../../src/node/allocator.js';

describe("glibc's mmap threshold at start", () => {
  it('warns on glibc when neither the variable nor the tunable fixes it', () => {
    assert.match(mmapThresholdWarning({ env: {}, glibc: true }) ?? '', /MALLOC_MMAP_THRESHOLD_=131072/);
    assert.match(
      mmapThresholdWarning({ env: { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }, glibc: true }) ?? '',
      /not fixed/,
    );
  });

  it('is quiet when it is fixed, or the C library is not glibc', () => {
    assert.equal(mmapThresholdWarning({ env: { MALLOC_MMAP_THRESHOLD_: '131072' }, glibc: true }), undefined);
    assert.equal(
      mmapThresholdWarning({ env: { GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536' }, glibc: true }),
      undefined,
    );
    assert.equal(mmapThresholdWarning({ env: {}, glibc: false }), undefined);
  });
});
