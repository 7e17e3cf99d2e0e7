// The intake scheduler shares the CPU work of taking requests round-robin: connections in turn,
// streams in turn within a connection, a node-wide budget per event-loop turn. Deterministic: tasks
// are counters, turns are counted, no network.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { IntakeQueue, IntakeScheduler, type IntakeTask } from '../../src/grpc/intake.js';

/** A stream with `left` requests to take, as FetchSession behaves: re-offers itself when cut short. */
class Task implements IntakeTask {
  intakeWaiting = false;
  taken = 0;
  constructor(
    readonly intakeQueue: IntakeQueue,
    private readonly s: IntakeScheduler,
    public left: number,
  ) {}
  take(max: number): number {
    const n = Math.min(max, this.left);
    this.left -= n;
    this.taken += n;
    if (this.left > 0) this.s.offer(this);
    return n;
  }
}

describe('IntakeScheduler', () => {
  test('a stream arriving during a flood is served within a turn or two, not after the flood', async () => {
    // slice 4, 16 per turn: each turn serves 4 slices.
    const s = new IntakeScheduler(4, 16);
    const flood: Task[] = [];
    for (let c = 0; c < 4; c++) {
      const q = new IntakeQueue();
      for (let i = 0; i < 16; i++) flood.push(new Task(q, s, 1_000_000));
    }
    for (const t of flood) s.offer(t);
    for (let i = 0; i < 10; i++) await nextTurn();
    const good = new Task(new IntakeQueue(), s, 1);
    s.offer(good);
    // Five connections now, one slice each per round: the good one's turn comes within two turns.
    await nextTurn();
    await nextTurn();
    assert.equal(good.taken, 1, 'the late stream was served');
    // The flood is still far from done: the good stream did not wait for it.
    assert.ok(flood.every((t) => t.left > 0));
  });

  test('connections get equal turns however many streams each has; streams of one connection share', async () => {
    const s = new IntakeScheduler(1, 10);
    const many = new IntakeQueue();
    const manyTasks = Array.from({ length: 9 }, () => new Task(many, s, 1000));
    const one = new Task(new IntakeQueue(), s, 1000);
    // Offered while a turn is running elsewhere: queue them all (the first would run at once).
    for (const t of manyTasks) s.offer(t);
    s.offer(one);
    for (let i = 0; i < 20; i++) await nextTurn();
    const manyTotal = manyTasks.reduce((n, t) => n + t.taken, 0);
    // The first offer ran at once (1 request); after that the two connections alternate.
    assert.ok(
      Math.abs(manyTotal - one.taken) <= 2,
      `many-stream connection ${manyTotal}, one-stream ${one.taken}`,
    );
    const takes = manyTasks.map((t) => t.taken);
    // The first also ran once at once, when offered.
    assert.ok(Math.max(...takes) - Math.min(...takes) <= 2, `streams of one connection took ${takes}`);
  });

  test('no more than the per-turn budget is taken in one turn', async () => {
    const s = new IntakeScheduler(8, 32);
    const tasks = Array.from({ length: 20 }, () => new Task(new IntakeQueue(), s, 1000));
    for (const t of tasks) s.offer(t);
    const total = () => tasks.reduce((n, t) => n + t.taken, 0);
    let before = total();
    for (let i = 0; i < 10; i++) {
      await nextTurn();
      const now = total();
      assert.ok(now - before <= 32, `turn ${i} took ${now - before}`);
      before = now;
    }
    assert.ok(total() >= 32 * 8, `${total()} taken in 10 turns`);
  });

  test('a task offered while already waiting is not queued twice', async () => {
    const s = new IntakeScheduler(1, 1);
    const a = new Task(new IntakeQueue(), s, 5);
    const b = new Task(new IntakeQueue(), s, 5);
    s.offer(a); // runs at once, spends the turn, re-offers itself
    s.offer(b);
    s.offer(b);
    assert.equal(s.waiting, 2);
    for (let i = 0; i < 20; i++) await nextTurn();
    assert.equal(a.taken + b.taken, 10);
    assert.equal(s.waiting, 0);
  });
});
