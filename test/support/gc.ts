// V8's gc() for tests that watch memory being freed (limbo, weak references, retained strings).

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { NUDGE_SETTLE_MS } from '../../src/limbo.js';
import { sleep } from './wait.js';

setFlagsFromString('--expose-gc');
/** A full, synchronous collection. The flag reaches only contexts made after it is set, hence the new one. */
export const gc = runInNewContext('gc') as () => void;

/**
 * A full collection in a turn of its own — V8 keeps a WeakRef's target alive until the job that made or
 * read the WeakRef ends (limbo reads them), so a collection in the same job would keep what the test just
 * dropped — then `settleMs` more for limbo to scan again: its own scans wait NUDGE_SETTLE_MS after it
 * asked V8 to collect (limbo.ts), and an ask may have run just before.
 */
export async function collect(settleMs = NUDGE_SETTLE_MS + 5): Promise<void> {
  await sleep(1);
  gc();
  if (settleMs > 0) await sleep(settleMs);
}
