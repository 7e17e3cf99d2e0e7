// Prometheus metrics of a cache node (prom-client, own registry).
//
// The request path pays nothing: groups, caches and the HTTP front keep plain integer counters, and
// every metric here reads them in a `collect` callback at scrape time. Only peer RPC latency is
// observed as it happens (it is on the network path already).

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { MemoryStats, ServedRegistry } from '../group.js';
import type { GrpcServerStats } from '../grpc/index.js';
import type { ConnectionCounters } from './connections.js';
import type { FrontCounters } from './http.js';
import type { MemcachedCounters } from './memcached/server.js';

/** What /_cluster and the membership gauges read. */
export interface ClusterView {
  members: readonly { state: string }[];
  /** Nodes on the ring (alive + suspect, self included). */
  ringSize: number;
  /** Membership's own counters (numbers only are exported). */
  stats?: Record<string, unknown>;
}

export interface MetricsOptions {
  registry: ServedRegistry;
  front?: FrontCounters;
  cluster?: () => ClusterView | undefined;
  /** The memcached fronts running (read at scrape time; they start after the metrics exist). */
  memcached?: () => ReadonlyArray<{ group: string; counters: MemcachedCounters }>;
  /** The gRPC server's holdings and stream resets (read at scrape time; undefined before it starts). */
  grpc?: () => GrpcServerStats | undefined;
  /** Process metrics (CPU, memory, event loop lag). Default true. */
  processMetrics?: boolean;
}

export interface NodeMetrics {
  readonly contentType: string;
  /** The exposition text. */
  text(): Promise<string>;
  /** Records one fill from a peer (the gRPC layer's latency hook). */
  observePeerRpc(peer: string, seconds: number, ok: boolean): void;
  readonly register: Registry;
}

/** groupcache's Stats fields → metric name and help. */
const GROUP_COUNTERS: [field: string, name: string, help: string][] = [
  ['gets', 'gets', 'Get requests of any kind (HTTP, library, peers)'],
  ['cacheHits', 'cache_hits', 'Gets answered from the main or hot cache'],
  ['peerLoads', 'peer_loads', 'Misses answered by the owning peer'],
  ['peerErrors', 'peer_errors', 'Peer requests that failed (the key was then loaded locally)'],
  [
    'ownerLoadErrors',
    'owner_load_errors',
    'Peer requests the owner answered with its own failed load (the get failed without loading here)',
  ],
  ['loads', 'loads', 'Misses (gets minus cache hits)'],
  ['loadsDeduped', 'loads_deduped', 'Misses after joining concurrent identical loads (singleflight)'],
  ['localLoads', 'local_loads', 'Values loaded by this node’s loader'],
  ['localLoadErrs', 'local_load_errors', 'Loader failures on this node'],
  ['serverRequests', 'server_requests', 'Gets that came from peers'],
  ['staleHits', 'stale_hits', 'Answers of a stale value (stale-while-revalidate or stale-if-error)'],
  ['staleIfErrorHits', 'stale_if_error_hits', 'Stale answers after a failed load (stale-if-error)'],
  ['backgroundRefreshes', 'background_refreshes', 'Background refreshes of stale values started here'],
  ['refreshErrors', 'refresh_errors', 'Background refreshes that failed (the stale value stayed)'],
  ['negativeHits', 'negative_hits', 'Gets answered NotFound from a remembered NotFound (negative caching)'],
  ['sets', 'sets', 'Values stored here by set (as the owner)'],
  ['handoffHits', 'handoff_hits', 'Owner misses answered from a previous holder’s cache (warm handoff)'],
  ['handoffMisses', 'handoff_misses', 'Handoff questions no previous holder could answer (the loader ran)'],
  ['handoffBytes', 'handoff_bytes', 'Value bytes received by warm handoff (answers and pushes kept)'],
  ['handoffAccepted', 'handoff_accepted', 'Entries pushed here by a leaving node and kept'],
  ['handoffPushed', 'handoff_pushed', 'Entries this node pushed to their next owners when leaving'],
];

const CACHE_GAUGES: [field: string, name: string, help: string][] = [
  ['bytes', 'cache_bytes', 'Bytes held by the cache (keys + values)'],
  ['items', 'cache_items', 'Entries in the cache'],
];

const CACHE_COUNTERS: [field: string, name: string, help: string][] = [
  ['gets', 'cache_gets', 'Lookups in the cache'],
  ['hits', 'cache_lookup_hits', 'Lookups that found a live entry'],
  ['evictions', 'cache_evictions', 'Entries evicted to stay within the byte budget'],
];

export function createMetrics(opts: MetricsOptions): NodeMetrics {
  const register = new Registry();
  const { registry } = opts;
  if (opts.processMetrics !== false) collectDefaultMetrics({ register, prefix: 'gossipcache_process_' });

  for (const [field, name, help] of GROUP_COUNTERS) {
    new Counter({
      name: `gossipcache_group_${name}_total`,
      help,
      labelNames: ['group'],
      registers: [register],
      collect() {
        this.reset();
        for (const g of registry.list())
          this.inc({ group: g.name }, num((g.stats as Record<string, unknown>)[field]));
      },
    });
  }
  for (const [field, name, help] of CACHE_GAUGES) {
    new Gauge({
      name: `gossipcache_${name}`,
      help,
      labelNames: ['group', 'cache'],
      registers: [register],
      collect() {
        for (const g of registry.list()) {
          for (const cache of ['main', 'hot'] as const) {
            this.set(
              { group: g.name, cache },
              num((g.cacheStats(cache) as unknown as Record<string, unknown>)[field]),
            );
          }
        }
      },
    });
  }
  for (const [field, name, help] of CACHE_COUNTERS) {
    new Counter({
      name: `gossipcache_${name}_total`,
      help,
      labelNames: ['group', 'cache'],
      registers: [register],
      collect() {
        this.reset();
        for (const g of registry.list()) {
          for (const cache of ['main', 'hot'] as const) {
            this.inc(
              { group: g.name, cache },
              num((g.cacheStats(cache) as unknown as Record<string, unknown>)[field]),
            );
          }
        }
      },
    });
  }

  // The value store under both caches (docs/memory.md): what the process really holds for them. Each
  // group's memoryStats is read once per scrape (it scans the store's limbo), shared by the metrics below:
  // prom-client runs their collect callbacks one after the other in one turn.
  let memory: [group: string, stats: MemoryStats][] | undefined;
  const memoryStats = (): [group: string, stats: MemoryStats][] => {
    if (memory === undefined) {
      memory = [];
      for (const g of registry.list()) {
        const m = g.memoryStats?.();
        if (m !== undefined) memory.push([g.name, m]);
      }
      queueMicrotask(() => {
        memory = undefined;
      });
    }
    return memory;
  };
  new Gauge({
    name: 'gossipcache_store_bytes',
    help: 'Memory the value store holds: slab pages, values and keys in Buffers of their own, and dropped memory the collector has not freed yet (limbo)',
    labelNames: ['group', 'kind'],
    registers: [register],
    collect() {
      this.reset();
      for (const [group, m] of memoryStats()) {
        this.set({ group, kind: 'pages' }, m.pageBytes);
        this.set({ group, kind: 'own' }, m.ownBytes);
        this.set({ group, kind: 'limbo' }, m.limboBytes);
      }
    },
  });
  new Gauge({
    name: 'gossipcache_store_limit_bytes',
    help: 'Most the value store holds (cacheBytes + the uncharged overhead + room for partly used pages)',
    labelNames: ['group'],
    registers: [register],
    collect() {
      this.reset();
      for (const [group, m] of memoryStats()) this.set({ group }, m.limitBytes);
    },
  });
  new Gauge({
    name: 'gossipcache_store_heap_hole_reserve_bytes',
    help: "Of the store's limit, what values of 128 KiB or more may not use: room for the holes they leave in glibc's heap while its mmap threshold floats (0 when it is fixed, as the gossipcache command does)",
    labelNames: ['group'],
    registers: [register],
    collect() {
      this.reset();
      for (const [group, m] of memoryStats()) this.set({ group }, m.heapHoleReserveBytes);
    },
  });
  const STORE_COUNTERS: [
    field: 'pagesReassigned' | 'itemsReclaimed' | 'collectionsAsked' | 'indexReseeds',
    name: string,
    help: string,
  ][] = [
    [
      'pagesReassigned',
      'store_pages_reassigned',
      'Slab pages taken from one size class for another (their items evicted out of LRU order)',
    ],
    ['itemsReclaimed', 'store_items_reclaimed', 'Items evicted to take their page back'],
    [
      'collectionsAsked',
      'store_collections_asked',
      'Garbage collections the store asked V8 for because evicted values awaited it',
    ],
    [
      'indexReseeds',
      'store_index_reseeds',
      'Times the key index drew a new hash seed (a hash chain grew past 32: colliding keys)',
    ],
  ];
  for (const [field, name, help] of STORE_COUNTERS) {
    new Counter({
      name: `gossipcache_${name}_total`,
      help,
      labelNames: ['group'],
      registers: [register],
      collect() {
        this.reset();
        for (const [group, m] of memoryStats()) this.inc({ group }, m[field]);
      },
    });
  }

  const front = opts.front;
  if (front) {
    new Counter({
      name: 'gossipcache_http_responses_total',
      help: 'HTTP front answers by status class',
      labelNames: ['class'],
      registers: [register],
      collect() {
        this.reset();
        this.inc({ class: '2xx' }, front.ok);
        this.inc({ class: '4xx' }, front.clientErrors);
        this.inc({ class: '5xx' }, front.serverErrors);
      },
    });
    new Counter({
      name: 'gossipcache_http_connections_limited_total',
      help: 'HTTP connections limited: idle or stalled ones closed for a new one at the cap (shed), new ones let into the operational reserve (reserved) or closed at once (refused), and ones closed because the client held a transfer up for the request timeout (stalled)',
      labelNames: ['action'],
      registers: [register],
      collect() {
        this.reset();
        const c = front as Partial<ConnectionCounters>;
        this.inc({ action: 'shed' }, c.connectionsShed ?? 0);
        this.inc({ action: 'reserved' }, c.connectionsReserved ?? 0);
        this.inc({ action: 'refused' }, c.connectionsRefused ?? 0);
        this.inc({ action: 'stalled' }, c.connectionsStalled ?? 0);
      },
    });
    new Counter({
      name: 'gossipcache_http_fast_hits_total',
      help: 'HTTP gets answered synchronously from cache',
      registers: [register],
      collect() {
        this.reset();
        this.inc(front.fastHits);
      },
    });
  }

  const memcached = opts.memcached;
  if (memcached) {
    new Gauge({
      name: 'gossipcache_memcached_connections',
      help: 'memcached front: client connections open',
      labelNames: ['group'],
      registers: [register],
      collect() {
        this.reset();
        for (const m of memcached()) this.set({ group: m.group }, m.counters.currConnections);
      },
    });
    const counter = (
      name: string,
      help: string,
      label: string,
      fields: Record<string, keyof MemcachedCounters>,
    ) =>
      new Counter({
        name,
        help,
        labelNames: ['group', label],
        registers: [register],
        collect() {
          this.reset();
          for (const m of memcached()) {
            for (const [value, field] of Object.entries(fields)) {
              this.inc({ group: m.group, [label]: value }, m.counters[field]);
            }
          }
        },
      });
    counter(
      'gossipcache_memcached_connections_total',
      'memcached front: connections accepted, refused at the cap (every connection busy), idle ones closed at the cap for a new one, and ones closed mid-value, their sender stalled, when the budget for values being received was needed',
      'outcome',
      {
        accepted: 'totalConnections',
        refused: 'rejectedConnections',
        idle_closed: 'idleClosedForNew',
        stalled_sender_closed: 'stalledSendersClosed',
      },
    );
    counter(
      'gossipcache_memcached_commands_total',
      'memcached front: keys asked by get/gets, and writes',
      'command',
      {
        get_key: 'getKeys',
        set: 'cmdSet',
        touch: 'cmdTouch',
        delete: 'cmdDelete',
      },
    );
    counter(
      'gossipcache_memcached_errors_total',
      'memcached front: protocol errors (ERROR/CLIENT_ERROR) and failed loads or writes (SERVER_ERROR)',
      'kind',
      { protocol: 'protocolErrors', server: 'serverErrors' },
    );
    counter(
      'gossipcache_memcached_backpressure_pauses_total',
      'memcached front: times a client was not read because it did not read its replies',
      'reason',
      { replies: 'backpressurePauses' },
    );
  }

  const grpc = opts.grpc;
  if (grpc) {
    new Gauge({
      name: 'gossipcache_grpc_held_bytes',
      help: 'Bytes gRPC clients make this node hold now (requests in flight, replies not yet sent, request messages still arriving)',
      registers: [register],
      collect() {
        this.set(grpc()?.heldBytes ?? 0);
      },
    });
    new Gauge({
      name: 'gossipcache_grpc_fetch_streams',
      help: 'Peer Fetch streams open',
      registers: [register],
      collect() {
        this.set(grpc()?.fetchStreams ?? 0);
      },
    });
    new Counter({
      name: 'gossipcache_grpc_streams_reset_total',
      help: 'gRPC streams reset because their client did not read its replies or did not finish sending a request message: after the stall timeout (stalled), or sooner to keep the held-bytes budgets (shed; a connection closed for passing its bound counts once)',
      labelNames: ['reason'],
      registers: [register],
      collect() {
        this.reset();
        const s = grpc();
        this.inc({ reason: 'stalled' }, s?.stalledStreams ?? 0);
        this.inc({ reason: 'shed' }, s?.shedStreams ?? 0);
      },
    });
    new Gauge({
      name: 'gossipcache_grpc_connections',
      help: 'gRPC client connections open on the peer port',
      registers: [register],
      collect() {
        this.set(grpc()?.connections ?? 0);
      },
    });
    new Counter({
      name: 'gossipcache_grpc_connections_closed_total',
      help: 'gRPC connections closed at the connection cap: a silent one shed for a new one (shed), or the new one because every open one had spoken (refused)',
      labelNames: ['reason'],
      registers: [register],
      collect() {
        this.reset();
        const s = grpc();
        this.inc({ reason: 'shed' }, s?.connectionsShed ?? 0);
        this.inc({ reason: 'refused' }, s?.connectionsRefused ?? 0);
      },
    });
  }

  const cluster = opts.cluster;
  if (cluster) {
    new Gauge({
      name: 'gossipcache_members',
      help: 'Members this node knows, by state',
      labelNames: ['state'],
      registers: [register],
      collect() {
        const view = cluster();
        const counts: Record<string, number> = { alive: 0, suspect: 0, dead: 0, left: 0 };
        for (const m of view?.members ?? []) counts[m.state] = (counts[m.state] ?? 0) + 1;
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'gossipcache_ring_nodes',
      help: 'Nodes on this node’s ring (alive + suspect members)',
      registers: [register],
      collect() {
        this.set(cluster()?.ringSize ?? 0);
      },
    });
    new Gauge({
      name: 'gossipcache_membership',
      help: 'Membership protocol counters and gauges, by name',
      labelNames: ['name'],
      registers: [register],
      collect() {
        this.reset();
        for (const [name, v] of Object.entries(cluster()?.stats ?? {})) {
          if (typeof v === 'number') this.set({ name }, v);
          else if (v !== null && typeof v === 'object') {
            // One level of nesting (membership's transport counters): name="transport.packetsSent".
            for (const [sub, w] of Object.entries(v))
              if (typeof w === 'number') this.set({ name: `${name}.${sub}` }, w);
          }
        }
      },
    });
  }

  const peerRpc = new Histogram({
    name: 'gossipcache_peer_rpc_seconds',
    help: 'Latency of fills from peers (answered = value or not found; error = failed, loaded locally)',
    labelNames: ['peer', 'outcome'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [register],
  });

  return {
    contentType: register.contentType,
    text: () => register.metrics(),
    observePeerRpc(peer, seconds, ok) {
      peerRpc.observe({ peer, outcome: ok ? 'answered' : 'error' }, seconds);
    },
    register,
  };
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0;
}
