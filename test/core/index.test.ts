import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as api from '../../src/index.js';

it('exports the core API from the package entry point', () => {
  for (const name of [
    'Group',
    'GroupRegistry',
    'defaultRegistry',
    'NotFoundError',
    'InvalidKeyError',
    'GetterTimeoutError',
    'DuplicateGroupError',
    'isNotFound',
    'randomPromotion',
    'rateBasedPromotion',
    'noPeers',
  ]) {
    assert.ok(name in api, `missing export ${name}`);
  }
  assert.ok(new api.NotFoundError('x') instanceof Error);
  assert.equal(
    api.isNotFound(Object.assign(new Error('rebuilt by a transport'), { name: 'NotFoundError' })),
    true,
  );
  assert.equal(api.isNotFound(new Error('other')), false);
});
