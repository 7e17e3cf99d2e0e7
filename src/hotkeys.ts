// Per-key request-rate estimates and the hot-cache promotion policies.
//
// groupcache mirrors a value fetched from its owner into the local hot cache 1 time in 10 at random
// ("TODO(bradfitz): use minute_qps"). Random mirroring fills the small hot cache with whatever happened
// to be fetched, so cold keys keep evicting hot ones. Here every cache entry carries a cheap decayed
// request counter; owners report it to their peers as `minuteQps`, and the default policy mirrors a
// remote key only when it is hotter than the entry the hot cache would evict for it.

import { LRUCache } from 'lru-cache';

/**
 * Decay time constant of every rate estimate. Rates are reported per minute but weigh the last ~20 s most:
 * in the bench's popularity-shift scenario a 60 s constant kept formerly hot keys "hot" for too long.
 */
export const RATE_WINDOW_MS = 20_000;
const MINUTE_MS = 60_000;
/** A decayed count over RATE_WINDOW_MS times this is a rate per minute. */
const PER_MINUTE = MINUTE_MS / RATE_WINDOW_MS;

/**
 * A decayed request counter. `rate` is the estimate (requests per minute) as of `rateAt`; `hits` are
 * requests counted since then and not yet folded in. Counting a hit is `hits++` — no clock read — so the
 * cache hit path stays cheap; the clock is read only when the rate is read (`readRate`).
 */
export interface RateState {
  hits: number;
  rate: number;
  rateAt: number;
}

/**
 * Folds pending hits into `s.rate` as of `now` and returns it (requests per minute). Pending hits are
 * assumed spread evenly since `rateAt`, which is exact for a steady stream: a key read λ times a minute
 * reads back as λ.
 */
export function readRate(s: RateState, now: number): number {
  const dt = now - s.rateAt;
  if (dt <= 0) {
    if (s.hits !== 0) {
      s.rate += s.hits * PER_MINUTE;
      s.hits = 0;
    }
    return s.rate;
  }
  const x = dt / RATE_WINDOW_MS;
  const d = Math.exp(-x);
  // Hits spread evenly over [rateAt, now] decay on average by (1 - e^-x) / x.
  s.rate = s.rate * d + (s.hits * PER_MINUTE * (1 - d)) / x;
  s.hits = 0;
  s.rateAt = now;
  return s.rate;
}

/** What the hot cache looks like to a promotion policy. */
export interface HotCacheView {
  /** True if `bytes` more fit in the hot cache without evicting anything. */
  hasRoom(bytes: number): boolean;
  /**
   * Rate (requests per minute through this process) of the entry the hot cache would evict next — the
   * oldest not read since it was placed (CLOCK, KeyIndex.victim), the practical "coldest" — or
   * `undefined` when the hot cache is empty.
   */
  coldestMinuteQps(): number | undefined;
}

/** A value this process just fetched from its owner, offered to the hot cache. */
export interface PromotionCandidate {
  readonly key: string;
  /** Bytes it would take (key + value). */
  readonly bytes: number;
  /** The group's clock (ms). */
  readonly now: number;
  /** The owner's estimate of the key's cluster-wide requests per minute, if it sent one. */
  readonly ownerMinuteQps: number | undefined;
  /** Processes in the cluster as this one sees them (itself + peers), to turn the owner's rate into a share. */
  readonly clusterSize: number;
  readonly hot: HotCacheView;
}

/**
 * Decides which remote values are mirrored in the hot cache. Called on every successful fetch from an
 * owner (never on the cache-hit path). Return `false` to skip; `true` to mirror the value (its hot entry's
 * rate starts at the owner's rate divided by the cluster size); or a number: mirror it, starting its rate
 * (requests per minute through this process) there.
 */
export interface HotKeyPolicy {
  shouldPromote(c: PromotionCandidate): boolean | number;
}

/**
 * groupcache's policy: mirror a fetched value with probability 1/n, whatever its rate. `random` is
 * injectable so benchmarks and tests are reproducible.
 */
export function randomPromotion(n = 10, random: () => number = Math.random): HotKeyPolicy {
  if (!(n >= 1)) throw new RangeError(`randomPromotion(n): n must be >= 1, got ${n}`);
  return { shouldPromote: () => random() * n < 1 };
}

/** A not-yet-mirrored key's fetch rate, with when it was first seen and how often it was fetched since. */
interface Tracked extends RateState {
  since: number;
  count: number;
}

/** Options of {@link rateBasedPromotion}. */
export interface RateBasedPromotionOptions {
  /**
   * How many not-yet-mirrored keys this process remembers fetch rates for (an LRU, so memory stays
   * bounded: roughly key length + 80 bytes each). Default 1024.
   */
  maxTrackedKeys?: number;
  /** Never mirror a key fetched less often than this (requests per minute through this process). Default 0. */
  minMinuteQps?: number;
  /**
   * A key displaces the hot cache's coldest entry only when it is this many times hotter, so keys near
   * the boundary do not keep evicting each other (each swap costs a later fetch). Default 1.5: larger
   * values churn less but let a newly popular key wait longer behind formerly hot ones.
   */
  margin?: number;
}

/**
 * The default policy. A fetched key's local rate is estimated as the larger of (a) its own recent fetch
 * rate from this process, tracked in a bounded LRU (for a key first seen less than RATE_WINDOW_MS ago: its
 * fetches over its age, so a newly popular key is recognised in seconds), and (b) the owner's reported
 * cluster-wide rate divided by the cluster size. It is mirrored when the hot cache has room, or when it is `margin` times hotter than
 * the entry the hot cache would evict for it. Hot entries keep counting their local hits, so a key that cools down is
 * the next to be displaced.
 */
export function rateBasedPromotion(opts: RateBasedPromotionOptions = {}): HotKeyPolicy {
  const maxTrackedKeys = opts.maxTrackedKeys ?? 1024;
  const minMinuteQps = opts.minMinuteQps ?? 0;
  const margin = opts.margin ?? 1.5;
  if (!(margin >= 1)) throw new RangeError(`rateBasedPromotion: margin must be >= 1, got ${margin}`);
  if (!(Number.isInteger(maxTrackedKeys) && maxTrackedKeys >= 1)) {
    throw new RangeError(`rateBasedPromotion: maxTrackedKeys must be an integer >= 1, got ${maxTrackedKeys}`);
  }
  const tracked = new LRUCache<string, Tracked>({ max: maxTrackedKeys });
  return {
    shouldPromote(c) {
      let s = tracked.get(c.key);
      if (s === undefined) {
        s = { hits: 0, rate: 0, rateAt: c.now, since: c.now, count: 0 };
        tracked.set(c.key, s);
      }
      s.hits++;
      s.count++;
      let own = readRate(s, c.now);
      // A decayed counter started at 0 reads low for its first window (λ·(1 - e^-t/τ)); while the key is
      // young, the plain average over its observed lifetime is the better estimate of its rate.
      const age = c.now - s.since;
      if (age > 0 && age < RATE_WINDOW_MS && s.count > 1) {
        own = Math.max(own, ((s.count - 1) * MINUTE_MS) / age);
      }
      const share = c.ownerMinuteQps === undefined ? 0 : c.ownerMinuteQps / Math.max(1, c.clusterSize);
      const estimate = Math.max(own, share);
      if (estimate < minMinuteQps) return false;
      if (!c.hot.hasRoom(c.bytes)) {
        const coldest = c.hot.coldestMinuteQps();
        if (coldest !== undefined && estimate <= coldest * margin) return false;
      }
      tracked.delete(c.key);
      return estimate;
    },
  };
}
