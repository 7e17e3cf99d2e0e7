import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { stripVTControlCharacters } from 'node:util';
import { ConfigError, parseConfig } from '../../src/node/config.js';
import { createLogger, RateLimitedLog, usePrettyLogs } from '../../src/node/log.js';
import { CLI, nodePorts } from '../support/cli-node.js';

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

test('log format: auto is pretty exactly on a terminal; json and pretty force it', () => {
  assert.equal(usePrettyLogs('auto', true), true);
  assert.equal(usePrettyLogs('auto', false), false);
  assert.equal(usePrettyLogs('auto', undefined), false);
  assert.equal(usePrettyLogs('json', true), false);
  assert.equal(usePrettyLogs('pretty', false), true);
  const parse = (v: string) => {
    const r = parseConfig([], { LOG_FORMAT: v });
    return r.help ? undefined : r.config.logFormat;
  };
  assert.equal(parse('JSON'), 'json');
  assert.equal(parse('auto'), 'auto');
  assert.throws(
    () => parse('xml'),
    (err: Error) => err instanceof ConfigError && /LOG_FORMAT/.test(err.message),
  );
});

test('pretty format: one readable line per event, level name, time of day, fields inline', () => {
  let text = '';
  const sink = new Writable({
    write(chunk, _enc, cb) {
      text += String(chunk);
      cb();
    },
  });
  const logger = createLogger('info', sink, 'pretty');
  logger.info({ members: 3 }, 'ready');
  logger.warn('careful');
  const lines = stripVTControlCharacters(text).trim().split('\n');
  assert.equal(lines.length, 2, text);
  assert.match(lines[0], /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: ready \{"members":3\}$/);
  assert.match(lines[1], /WARN: careful/);
});

const hasScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;

/** Runs the CLI until its first "ready" line, then SIGTERM; returns everything it printed. */
async function runCli(viaTerminal: boolean): Promise<string> {
  const p = await nodePorts();
  const env = {
    PATH: process.env.PATH,
    GOSSIPCACHE_HTTP_ADDR: `127.0.0.1:${p.http}`,
    GOSSIPCACHE_GRPC_ADDR: `127.0.0.1:${p.grpc}`,
    GOSSIPCACHE_GOSSIP_ADDR: `127.0.0.1:${p.gossip}`,
    GOSSIPCACHE_ADVERTISE_HOST: '127.0.0.1',
  };
  // `script` runs the command on a new pseudo-terminal: stdout is a TTY, as for a person.
  const child = viaTerminal
    ? spawn('script', ['-qfec', `exec ${process.execPath} ${CLI}`, '/dev/null'], { env, stdio: 'pipe' })
    : spawn(process.execPath, [CLI], { env, stdio: 'pipe' });
  let out = '';
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (/ready/.test(out)) resolve();
    });
    child.on('exit', () => resolve());
  });
  // Under `script` the node is the terminal's foreground process: SIGTERM goes to `script`, which
  // hangs up the terminal; the node stops on the hang-up or on our kill of the group below.
  child.kill('SIGTERM');
  await exited;
  clearTimeout(timer);
  return stripVTControlCharacters(out);
}

test('the CLI logs readable lines on a terminal and JSON lines into a pipe', {
  skip: !hasScript && 'no `script` (util-linux) to give the CLI a pseudo-terminal',
}, async () => {
  const onTerminal = await runCli(true);
  assert.match(onTerminal, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: gossipcache started; try: curl/m, onTerminal);
  assert.doesNotMatch(onTerminal, /^\{"level"/m);
  const piped = await runCli(false);
  const first = piped.split('\n').find((l) => l.includes('gossipcache started')) ?? '';
  assert.equal(JSON.parse(first).level, 30, piped);
});
