import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger, RateLimitedLog } from '../../src/node/log.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).trim().split('\n')) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { lines, logger: createLogger('info', sink) };
}

test('pino JSON lines with level, ISO time, pid and message', () => {
  const { lines, logger } = capture();
  logger.info({ a: 1 }, 'hello');
  logger.debug('hidden at info');
  assert.equal(lines.length, 1);
  assert.equal(lines[0].msg, 'hello');
  assert.equal(lines[0].level, 30);
  assert.equal(lines[0].pid, process.pid);
  assert.match(String(lines[0].time), /^\d{4}-\d\d-\d\dT/);
});

test('RateLimitedLog: one line per key per interval, then the suppressed count', () => {
  const { lines, logger } = capture();
  let now = 0;
  const rl = new RateLimitedLog(logger, 1000, () => now);
  for (let i = 0; i < 50; i++) rl.warn('peer-a', { peer: 'a' }, 'peer a failed');
  rl.warn('peer-b', { peer: 'b' }, 'peer b failed');
  assert.deepEqual(
    lines.map((l) => l.msg),
    ['peer a failed', 'peer b failed'],
  );
  now = 999;
  rl.warn('peer-a', { peer: 'a' }, 'peer a failed');
  assert.equal(lines.length, 2, 'still inside the interval');
  now = 1000;
  rl.warn('peer-a', { peer: 'a' }, 'peer a failed');
  assert.equal(lines.length, 3);
  assert.equal(lines[2].suppressed, 50);
  assert.equal(lines[2].level, 40);
});
