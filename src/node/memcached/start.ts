// Starts the memcached fronts a node configuration asks for: one on GOSSIPCACHE_MEMCACHED_ADDR for the
// default group (the first), and one per group that names its own `memcachedAddr` in the groups file.

import type { AddressInfo, Server } from 'node:net';
import { formatHostPort, type HostPort } from '../../address.js';
import type { GroupRegistry } from '../../group.js';
import type { NodeConfig } from '../config.js';
import { createMemcachedFront, type MemcachedCounters } from './server.js';

export interface RunningMemcachedFront {
  group: string;
  /** `host:port` it listens on (the real port when 0 was asked). */
  addr: string;
  server: Server & { counters: MemcachedCounters; drainConnections(): void; closeAllConnections(): void };
}

export async function startMemcachedFronts(
  config: NodeConfig,
  registry: GroupRegistry,
  version: string,
  onLoadError: (group: string, key: string, err: unknown) => void,
): Promise<RunningMemcachedFront[]> {
  const wanted: Array<{ group: string; addr: HostPort }> = [];
  if (config.memcached.addr) wanted.push({ group: config.groups[0].name, addr: config.memcached.addr });
  for (const g of config.groups) if (g.memcachedAddr) wanted.push({ group: g.name, addr: g.memcachedAddr });
  const out: RunningMemcachedFront[] = [];
  try {
    for (const w of wanted) {
      const group = registry.get(w.group);
      if (!group) throw new Error(`memcached front: no group named ${w.group}`);
      const server = createMemcachedFront({
        group,
        // A memcached-style number first: some clients parse it to decide what the server supports.
        version: `1.6.0-gossipcache-${version}`,
        maxValueBytes: config.originMaxBytes,
        maxConnections: config.memcached.maxConnections,
        idleTimeoutMs: config.memcached.idleTimeoutMs,
        onLoadError: (key, err) => onLoadError(w.group, key, err),
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(w.addr.port, w.addr.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      const port = (server.address() as AddressInfo).port;
      out.push({ group: w.group, addr: formatHostPort({ host: w.addr.host, port }), server });
    }
  } catch (err) {
    for (const m of out) m.server.close();
    throw err;
  }
  return out;
}
