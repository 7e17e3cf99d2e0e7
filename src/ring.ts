// Consistent hashing: which node owns a key. Every node computes owners on its own from the same
// member set, so the algorithm must be deterministic and exactly specified — docs/ring.md is the
// specification; a client in another language gets the same owner for the same key and member set.
//
// Rendezvous (highest-random-weight) hashing: each member scores the key, the highest score owns it.
// Measured against rings (docs/ring.md, scripts/bench/ring.ts): it is balanced to within the sampling
// noise of the keys (max/mean ≤ 1.02 for every member count 3..50 over 1M keys, where groupcache's 50
// CRC-32 points per node reach 1.56 and even 1000 vnodes per node ~1.1), membership changes move
// exactly the keys they must, and there is no ring to rebuild. The price is O(members) per lookup:
// one fmix32 and a compare per member, ~2.5 ns each — ~75 ns at 3 members, ~150–220 ns at 50.
//
// The hash is MurmurHash3_x86_32 (seed 0), written here: it needs only 32-bit multiplies, which
// Math.imul does natively (~20 ns for a short key). XXH64 over two 32-bit halves measured ~300 ns per
// short key, BigInt is slower still, and node:crypto costs far more per key than a cache lookup.
// HRW uses only 32 bits of the key's hash anyway.

/**
 * MurmurHash3_x86_32 (Austin Appleby, SMHasher) of `b[0..len)` with `seed`, as an unsigned 32-bit
 * number. Only 32-bit multiplies, which `Math.imul` does natively — why this hash and not a 64-bit one.
 */
export function murmur3(b: Uint8Array, len: number = b.length, seed = 0): number {
  let h = seed | 0;
  const body = len & ~3;
  let i = 0;
  let k: number;
  for (; i < body; i += 4) {
    k = b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = len & 3;
  if (tail !== 0) {
    k = b[i];
    if (tail > 1) k |= b[i + 1] << 8;
    if (tail > 2) k |= b[i + 2] << 16;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
  }
  return fmix32(h ^ len);
}

/** MurmurHash3's 32-bit finalizer (fmix32): a bijection on 32-bit words with full avalanche. */
function fmix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

const encoder = new TextEncoder();

// A lone surrogate (\p{Cs} matches only unpaired ones in a /u regex) has no UTF-8 form, and a line
// break would make the checksum input ambiguous.
const BAD_LABEL_CHARS = /[\r\n]|\p{Cs}/u;

// UTF-8 bytes of a non-ASCII key being hashed. Grown on demand, never shrunk; keys are small (the core
// caps them at 64 KiB by default).
let scratch = new Uint8Array(256);

/**
 * MurmurHash3_x86_32 (seed 0) of the UTF-8 bytes of `s`. An ASCII string is its own UTF-8, so it is
 * hashed straight from its char codes — no copy, no call into C++ (about half the cost of a short
 * key's lookup otherwise). Anything else is encoded by TextEncoder, which writes a lone surrogate as
 * U+FFFD like every WHATWG encoder.
 */
function word(s: string): number {
  const len = s.length;
  const body = len & ~3;
  let h = 0;
  let i = 0;
  let k: number;
  for (; i < body; i += 4) {
    const c0 = s.charCodeAt(i);
    const c1 = s.charCodeAt(i + 1);
    const c2 = s.charCodeAt(i + 2);
    const c3 = s.charCodeAt(i + 3);
    if ((c0 | c1 | c2 | c3) >= 0x80) return wordUtf8(s);
    k = Math.imul(c0 | (c1 << 8) | (c2 << 16) | (c3 << 24), 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = len & 3;
  if (tail !== 0) {
    const c0 = s.charCodeAt(i);
    const c1 = tail > 1 ? s.charCodeAt(i + 1) : 0;
    const c2 = tail > 2 ? s.charCodeAt(i + 2) : 0;
    if ((c0 | c1 | c2) >= 0x80) return wordUtf8(s);
    k = Math.imul(c0 | (c1 << 8) | (c2 << 16), 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
  }
  return fmix32(h ^ len);
}

function wordUtf8(s: string): number {
  // A UTF-16 code unit becomes at most 3 UTF-8 bytes.
  if (s.length * 3 > scratch.length) scratch = new Uint8Array(Math.max(s.length * 3, scratch.length * 2));
  const { written } = encoder.encodeInto(s, scratch);
  return murmur3(scratch, written, 0);
}

/** Byte-wise (UTF-8) order of two strings, which is code point order; JS `<` compares UTF-16 units. */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function notAString(key: unknown): TypeError {
  return new TypeError(`ring: a key must be a string, got ${typeof key}; convert it before the lookup`);
}

/** Options of {@link Ring}. */
export interface RingOptions {
  /** Initial members (same rules as {@link Ring.set}). Default: none. */
  labels?: Iterable<string>;
}

/**
 * Maps keys to their owner among a set of members labelled by their advertised gRPC address
 * (`host:port`). Rendezvous hashing, specified in docs/ring.md:
 *
 *   k         = MurmurHash3_x86_32(UTF-8(key), seed 0)
 *   score(m)  = fmix32(k XOR MurmurHash3_x86_32(UTF-8(label of m), seed 0))
 *   owner     = the member with the highest score
 *
 * Scores of two members tie only when their labels' hashes collide (fmix32 is a bijection); then
 * fmix32(k XOR MurmurHash3_x86_32(label, seed 1)) decides, and after that the smaller label in UTF-8
 * byte order. Adding a member moves only the keys it now owns; removing one moves only the keys it
 * owned. `owner()` allocates nothing: one MurmurHash3 of the key plus one fmix32 per member.
 */
export class Ring {
  // Members sorted by UTF-8 bytes, so scanning in index order with a strict `>` implements the tie rule.
  #labels: string[] = [];
  #seeds = new Uint32Array(0);
  // MurmurHash3_x86_32(label, seed 1): only consulted when two members' seeds collide.
  #tieSeeds = new Uint32Array(0);
  #checksum = '';

  constructor(opts: RingOptions = {}) {
    this.set(opts.labels ? [...opts.labels] : []);
  }

  /**
   * Replaces the member set. Order and duplicates do not matter: two rings given the same labels in
   * any order own keys identically and report the same checksum. Throws a TypeError (and keeps the
   * previous members) when a label is not a non-empty, well-formed string without line breaks.
   */
  set(labels: Iterable<string>): void {
    const unique = new Set<string>();
    for (const label of labels) {
      if (typeof label !== 'string' || label.length === 0) {
        throw new TypeError(
          `ring: member label must be a non-empty string such as "10.0.0.5:9090", got ${JSON.stringify(label)}`,
        );
      }
      if (BAD_LABEL_CHARS.test(label)) {
        throw new TypeError(
          `ring: member label ${JSON.stringify(label)} has a lone surrogate or a line break; use the node's host:port`,
        );
      }
      unique.add(label);
    }
    const sorted = [...unique].sort(compareUtf8);
    const seeds = new Uint32Array(sorted.length);
    const tieSeeds = new Uint32Array(sorted.length);
    for (let i = 0; i < sorted.length; i++) {
      const bytes = Buffer.from(sorted[i], 'utf8');
      seeds[i] = murmur3(bytes, bytes.length, 0);
      tieSeeds[i] = murmur3(bytes, bytes.length, 1);
    }
    // checksum = MurmurHash3_x86_32 (seed 0) of each sorted label's UTF-8 bytes followed by "\n"
    const all = Buffer.from(sorted.map((l) => l + '\n').join(''), 'utf8');
    this.#labels = sorted;
    this.#seeds = seeds;
    this.#tieSeeds = tieSeeds;
    this.#checksum = murmur3(all, all.length, 0).toString(16).padStart(8, '0');
  }

  /** The owner of `key`, or `undefined` when the ring has no members. TypeError if `key` is no string. */
  owner(key: string): string | undefined {
    if (typeof key !== 'string') throw notAString(key);
    const seeds = this.#seeds;
    const n = seeds.length;
    if (n <= 1) return this.#labels[0];
    const k = word(key);
    let best = fmix32(k ^ seeds[0]);
    let owner = 0;
    for (let i = 1; i < n; i++) {
      const score = fmix32(k ^ seeds[i]);
      if (score > best || (score === best && this.#winsTie(k, i, owner))) {
        best = score;
        owner = i;
      }
    }
    return this.#labels[owner];
  }

  /** Whether member `i` beats member `j` (j < i) for key word `k` when their scores are equal. */
  #winsTie(k: number, i: number, j: number): boolean {
    return fmix32(k ^ this.#tieSeeds[i]) > fmix32(k ^ this.#tieSeeds[j]);
  }

  /**
   * The first `n` members in preference order for `key` (highest score first; `ownersOf(key, 1)[0]`
   * is `owner(key)`). For replication: when the owner leaves, the second becomes the owner.
   */
  ownersOf(key: string, n: number): string[] {
    const count = Math.max(0, Math.min(Math.floor(n) || 0, this.#labels.length));
    if (typeof key !== 'string') throw notAString(key);
    if (count === 0) return [];
    const k = word(key);
    const order = this.#labels.map((_, i) => i);
    const scores = Array.from(this.#seeds, (s) => fmix32(k ^ s));
    const ties = Array.from(this.#tieSeeds, (s) => fmix32(k ^ s));
    order.sort((a, b) => scores[b] - scores[a] || ties[b] - ties[a] || a - b);
    return order.slice(0, count).map((i) => this.#labels[i]);
  }

  /** The members, sorted by UTF-8 bytes (a copy). */
  nodes(): string[] {
    return [...this.#labels];
  }

  /** Number of members. */
  get size(): number {
    return this.#labels.length;
  }

  /** Whether `label` is a member. */
  has(label: string): boolean {
    return this.#labels.includes(label);
  }

  /**
   * 8 hex digits identifying the member set: MurmurHash3_x86_32 (seed 0) of the sorted labels, each as
   * UTF-8 followed by "\n". Equal on every node with the same members; the empty ring has "00000000".
   */
  checksum(): string {
    return this.#checksum;
  }
}
