// Real processes over real UDP/TCP on 127.0.0.1: join in random order, crash (kill -9), restart at the
// same address, graceful leave (SIGTERM), and a node with the wrong key. Bounds are generous on
// purpose (a shared 2-core machine); speed is measured by scripts/bench/swim-real.ts, not here.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type MemberArgs, MemberProcess, type MemberStatusLine } from '../support/member-process.js';
import { freePorts } from '../support/ports.js';

const N = 5;
const key = randomBytes(32).toString('base64');
const procs: MemberProcess[] = [];
let ports: number[] = [];
const addr = (i: number) => `127.0.0.1:${ports[i]}`;
const idOf = (i: number) => `node-${i}`;

function args(i: number, extra: Partial<MemberArgs> = {}): MemberArgs {
  return {
    id: idOf(i),
    bindAddr: addr(i),
    seeds: ports.map((_, j) => addr(j)).filter((_, j) => j !== i),
    keys: [key],
    ...extra,
  };
}

async function start(i: number, extra?: Partial<MemberArgs>): Promise<MemberProcess> {
  const p = await MemberProcess.spawn(args(i, extra));
  procs.push(p);
  return p;
}

/** Poll every live process until `ok(status)` holds for all of them. */
async function until(
  live: MemberProcess[],
  ok: (s: MemberStatusLine, p: MemberProcess) => boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<MemberStatusLine[]> {
  const end = Date.now() + timeoutMs;
  let last: MemberStatusLine[] = [];
  for (;;) {
    last = await Promise.all(live.map((p) => p.status()));
    if (last.every((s, i) => ok(s, live[i]))) return last;
    if (Date.now() > end)
      throw new Error(
        `timed out waiting for ${what}; last views:\n${last
          .map((s, i) => `${live[i].args.id}: ${s.members.map((m) => `${m.id}=${m.state}`).join(' ')}`)
          .join('\n')}`,
      );
    await sleep(250);
  }
}

const stateOf = (s: MemberStatusLine, id: string) => s.members.find((m) => m.id === id)?.state;
const aliveIds = (s: MemberStatusLine) =>
  s.members
    .filter((m) => m.state === 'alive')
    .map((m) => m.id)
    .sort();

after(async () => {
  await MemberProcess.killAll(); // includes children still starting when a test failed
});

describe('membership across real processes', { timeout: 300_000 }, () => {
  let live: MemberProcess[] = [];

  before(async () => {
    ports = await freePorts(N + 1);
  });

  it('5 processes started in random order with staggered delays all find each other', async () => {
    const order = [...Array(N).keys()].sort(() => Math.random() - 0.5);
    for (const i of order) {
      await start(i);
      await sleep(Math.floor(Math.random() * 400));
    }
    live = [...procs];
    const all = [...Array(N).keys()].map(idOf).sort();
    const views = await until(
      live,
      (s) => s.ready && aliveIds(s).join() === all.join(),
      'all 5 alive everywhere',
    );
    for (const v of views) assert.deepEqual(aliveIds(v), all);
  });

  it('kill -9 of one member: every survivor marks it dead', async () => {
    const victim = live[2];
    await victim.kill('SIGKILL');
    live = live.filter((p) => p !== victim);
    await until(live, (s) => stateOf(s, victim.args.id) === 'dead', `${victim.args.id} dead everywhere`);
  });

  it('restarted at the same address, it is accepted again', async () => {
    const i = Number(procs.find((p) => p.exited)!.args.id.split('-')[1]);
    const again = await start(i);
    live.push(again);
    const all = [...Array(N).keys()].map(idOf).sort();
    await until(live, (s) => aliveIds(s).join() === all.join(), 'restarted member alive everywhere');
  });

  it('SIGTERM: the member leaves gracefully and the others drop it', async () => {
    const leaver = live[0];
    await leaver.kill('SIGTERM');
    assert.equal(leaver.exitCode, 0, 'a graceful leave exits 0');
    assert.ok(leaver.lines.some((l) => l.ev === 'left'));
    live = live.filter((p) => p !== leaver);
    await until(
      live,
      (s) => stateOf(s, leaver.args.id) === 'left',
      `${leaver.args.id} left everywhere`,
      30_000,
    );
  });

  it('the survivors converge on the same member set', async () => {
    const views = await until(
      live,
      (s) => aliveIds(s).length === live.length,
      'every survivor sees exactly the live members',
    );
    const expected = live.map((p) => p.args.id).sort();
    for (const v of views) assert.deepEqual(aliveIds(v), expected);
  });

  it('a node with the wrong key never joins, and the cluster counts its messages as undecryptable', async () => {
    const intruder = await start(N, { keys: [randomBytes(32).toString('base64')] });
    await sleep(5000);
    const s = await intruder.status();
    assert.equal(s.ready, false);
    assert.deepEqual(aliveIds(s), [idOf(N)], 'the intruder knows nobody');
    const views = await Promise.all(live.map((p) => p.status()));
    for (const v of views) assert.equal(stateOf(v, idOf(N)), undefined, 'a member learned of the intruder');
    const failures = views.reduce((n, v) => n + v.stats.transport.decryptFailures, 0);
    assert.ok(failures > 0, 'no decrypt failures counted');
    assert.ok(!intruder.exited);
  });
});
