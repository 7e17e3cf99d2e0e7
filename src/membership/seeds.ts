// Seeds: the addresses a node contacts to join the cluster. An operator writes them as `host[:port]`
// (GOSSIPCACHE_SEEDS=cache-1,cache-2:7946,[fd00::5]:7946). A name is resolved to ALL its addresses,
// so one docker-compose / Kubernetes headless service name finds every replica. Resolution failures
// are logged and skipped, never thrown: the caller retries later (a seed that does not exist yet is
// normal while a cluster starts).

import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { formatHostPort, type HostPort, parseHostPort } from '../address.js';

/** Port of the gossip protocol when a seed or bind address omits it (memberlist's default). */
export const DEFAULT_GOSSIP_PORT = 7946;

/**
 * Parse seeds given as an array or one comma/whitespace-separated string. Port 0 is refused (a seed
 * must be reachable). Throws on the first bad entry, naming it.
 */
export function parseSeeds(
  seeds: string | readonly string[] | undefined,
  defaultPort = DEFAULT_GOSSIP_PORT,
): HostPort[] {
  if (seeds === undefined) return [];
  const list = typeof seeds === 'string' ? seeds.split(/[\s,]+/) : seeds;
  const out: HostPort[] = [];
  for (const raw of list) {
    if (raw.trim() === '') continue;
    const hp = parseHostPort(raw, { defaultPort });
    if (hp.port === 0)
      throw new Error(`invalid seed "${raw}": port 0 cannot be contacted; give the real gossip port`);
    out.push(hp);
  }
  return out;
}

/** Resolves a name to its addresses; node's `dns.lookup(name, { all: true })` by default. */
export type Lookup = (host: string, family: 0 | 4 | 6) => Promise<{ address: string; family: number }[]>;

const defaultLookup: Lookup = (host, family) => dnsLookup(host, { all: true, family });

export interface ResolveSeedsOptions {
  /** Port for seeds without one. Default 7946. */
  defaultPort?: number;
  /**
   * Only addresses of this family (4 or 6) are returned — a UDP socket bound to IPv4 cannot send to
   * IPv6. 0 = both. Default 0.
   */
  family?: 0 | 4 | 6;
  /** Addresses to leave out (this node's own address: contacting yourself is pointless). */
  exclude?: readonly string[];
  /** DNS resolver (tests inject one). */
  lookup?: Lookup;
  /** Called once per seed that failed to resolve (the caller logs it). */
  onError?: (seed: string, err: Error) => void;
}

/**
 * Resolve seeds to unique `ip:port` strings, every address of every name. Never rejects: a seed that
 * fails to parse or resolve is reported through `onError` and skipped, so the caller can retry later.
 */
export async function resolveSeeds(
  seeds: readonly string[],
  opts: ResolveSeedsOptions = {},
): Promise<string[]> {
  const lookup = opts.lookup ?? defaultLookup;
  const family = opts.family ?? 0;
  const exclude = new Set(opts.exclude ?? []);
  const results = await Promise.all(
    seeds.map(async (seed): Promise<string[]> => {
      try {
        const [hp] = parseSeeds([seed], opts.defaultPort ?? DEFAULT_GOSSIP_PORT);
        if (!hp) return [];
        const ipFamily = isIP(hp.host);
        if (ipFamily !== 0) {
          if (family !== 0 && ipFamily !== family)
            throw new Error(`IPv${ipFamily} seed but this node uses IPv${family}`);
          return [formatHostPort(hp)];
        }
        const addrs = await lookup(hp.host, family);
        if (addrs.length === 0)
          throw new Error(`${hp.host} has no ${family ? `IPv${family} ` : ''}addresses`);
        return addrs.map((a) => formatHostPort({ host: a.address, port: hp.port }));
      } catch (err) {
        opts.onError?.(seed, err as Error);
        return [];
      }
    }),
  );
  const out: string[] = [];
  for (const a of results.flat()) if (!exclude.has(a) && !out.includes(a)) out.push(a);
  return out;
}
