// A cluster of gossipcache processes on a NetLab, plus the test origin, a load balancer's view of
// which nodes are routable, and a monitor that polls every node's /_cluster.

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { WaitAborted, waitFor } from '../wait.js';
import { type ClusterView, clusterView, httpGet, sumField } from './client.js';
import { defaultNodeCommand, type Host, NetLab, type NodeCommand, NodeProc } from './lab.js';
import { type Origin, startOrigin } from './origin.js';

export const REPO_ROOT = resolve(import.meta.dirname, '../../..');
export const SEED_NAME = 'seeds.gossipcache.test';
export const COUNTERS = ['stalls', 'suspicions', 'refutations', 'deaths'] as const;

/** Sum over nodes of how much each counter grew (nodes present in both snapshots). */
export function counterGrowth(
  before: Map<string, Record<string, number>>,
  after: Map<string, Record<string, number>>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of COUNTERS) out[f] = 0;
  for (const [k, a] of after) {
    const b = before.get(k);
    for (const f of COUNTERS) out[f] += Math.max(0, a[f] - (b?.[f] ?? 0));
  }
  return out;
}

export interface ClusterOptions {
  size: number;
  name: string; // for the log directory
  env?: (host: Host) => Record<string, string>;
  command?: NodeCommand;
}

export class Cluster {
  readonly lab: NetLab;
  readonly origin: Origin;
  readonly nodes: NodeProc[] = [];
  readonly logDir: string;
  /** Nodes a load balancer would send client requests to (it drops a node before stopping it). */
  readonly routable = new Set<NodeProc>();

  private constructor(lab: NetLab, origin: Origin, logDir: string) {
    this.lab = lab;
    this.origin = origin;
    this.logDir = logDir;
  }

  static async create(opts: ClusterOptions): Promise<Cluster> {
    const lab = NetLab.create();
    let origin: Origin | undefined;
    try {
      origin = await startOrigin(lab.hostIp);
      const logDir = join(REPO_ROOT, 'bench-results', 'cluster-logs', `${opts.name}-${lab.id}`);
      mkdirSync(logDir, { recursive: true });
      const c = new Cluster(lab, origin, logDir);
      const hosts = Array.from({ length: opts.size }, () => lab.addHost());
      // One DNS name that resolves to every node, in every namespace (like a headless service).
      lab.setDns({ [SEED_NAME]: hosts.map((h) => h.ip) });
      const command = opts.command ?? defaultNodeCommand(REPO_ROOT);
      for (const h of hosts) {
        const env = {
          GOSSIPCACHE_SEEDS: SEED_NAME,
          GOSSIPCACHE_ORIGIN: origin.template,
          GOSSIPCACHE_CACHE_BYTES: String(16 << 20),
          // The origin is a fixture in the (shared, busy) test process: give it time, so that a
          // failed request means the cluster failed, not the fixture.
          GOSSIPCACHE_ORIGIN_TIMEOUT: '30s',
          ...(opts.env?.(h) ?? {}),
        };
        c.nodes.push(new NodeProc(h, command, env, logDir));
      }
      return c;
    } catch (err) {
      await origin?.close();
      lab.destroy();
      throw err;
    }
  }

  running(): NodeProc[] {
    return this.nodes.filter((n) => n.running);
  }

  targets(): string[] {
    return [...this.routable].filter((n) => n.running).map((n) => n.httpUrl);
  }

  byGrpcAddr(addr: string): NodeProc | undefined {
    return this.nodes.find((n) => n.grpcAddr === addr || addr.startsWith(`${n.host.ip}:`));
  }

  async waitReady(node: NodeProc, timeoutMs = 90_000): Promise<number> {
    const t0 = performance.now();
    await waitFor(
      `node${node.host.index} /readyz`,
      async () => {
        if (!node.running)
          throw new WaitAborted(
            `node${node.host.index} exited ${JSON.stringify(node.exitInfo)}:\n${node.logTail()}`,
          );
        return (await httpGet(node.url('/readyz'), 1_000)).status === 200;
      },
      { timeoutMs, intervalMs: 200, state: () => node.logTail(10) },
    );
    return Math.round(performance.now() - t0);
  }

  async views(nodes: NodeProc[] = this.running()): Promise<Map<NodeProc, ClusterView | null>> {
    const out = new Map<NodeProc, ClusterView | null>();
    await Promise.all(nodes.map(async (n) => out.set(n, await clusterView(n.httpUrl, 2_000))));
    return out;
  }

  /**
   * Waits until every node in `members` has a ring of exactly their gRPC addresses and all report
   * the same ring checksum. Returns the time it took.
   */
  async waitConverged(members: NodeProc[], timeoutMs: number): Promise<number> {
    const want = members
      .map((n) => n.grpcAddr)
      .sort()
      .join(',');
    let last = '';
    const t0 = performance.now();
    await waitFor(
      `rings of ${members.map((n) => `node${n.host.index}`).join(',')} to converge`,
      async () => {
        const views = await this.views(members);
        last = describeViews(views);
        const list = [...views.values()];
        if (list.some((v) => !v || v.ring.join(',') !== want)) return false;
        return new Set(list.map((v) => v!.checksum)).size === 1;
      },
      { timeoutMs, intervalMs: 250, state: () => `want [${want}]\n${last}` },
    );
    return Math.round(performance.now() - t0);
  }

  /**
   * Membership counters per running node (from /_cluster `stats`), keyed `node<i>#<start>` so that a
   * restarted process is a new entry. `stalls` = timers that fired late because the process did not
   * get the CPU: evidence for a starved machine.
   */
  async counters(): Promise<Map<string, Record<string, number>>> {
    const out = new Map<string, Record<string, number>>();
    for (const [n, v] of await this.views()) {
      const stats = (v?.raw as { stats?: unknown } | undefined)?.stats;
      if (!stats) continue;
      const c: Record<string, number> = {};
      for (const f of COUNTERS) c[f] = sumField(stats, f) ?? 0;
      out.set(`node${n.host.index}#${n.starts}`, c);
    }
    return out;
  }

  /**
   * Member deaths as the nodes logged them (`{"time", "member", "grpcAddr", "state": "dead", "prev"}`
   * lines of the node's change log), at or after `since` (ms epoch). Exact times, unlike the monitor's
   * 400 ms polls; all processes share this machine's clock.
   */
  loggedDeaths(since: number): { t: number; observer: number; subject: string; prev: string }[] {
    const out: { t: number; observer: number; subject: string; prev: string }[] = [];
    for (const n of this.nodes) {
      const file = join(this.logDir, `node${n.host.index}.log`);
      if (!existsSync(file)) continue;
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (!line.includes('"state":"dead"')) continue;
        try {
          const j = JSON.parse(line) as {
            time?: string;
            grpcAddr?: string;
            state?: string;
            prev?: string | null;
          };
          const t = Date.parse(j.time ?? '');
          if (j.state === 'dead' && j.prev && j.grpcAddr && t >= since) {
            out.push({ t, observer: n.host.index, subject: j.grpcAddr, prev: j.prev });
          }
        } catch {
          // not a JSON log line
        }
      }
    }
    return out.sort((a, b) => a.t - b.t);
  }

  async destroy(): Promise<string[]> {
    await Promise.all(this.nodes.map((n) => n.stop('SIGKILL', 1_000)));
    await this.origin.close();
    this.lab.destroy();
    return this.lab.leftovers();
  }
}

export function describeViews(views: Map<NodeProc, ClusterView | null>): string {
  return [...views]
    .map(([n, v]) =>
      v
        ? `node${n.host.index}: checksum=${v.checksum} members=${v.members.map((m) => `${m.grpcAddr}/${m.state}`).join(' ')}`
        : `node${n.host.index}: no /_cluster answer`,
    )
    .join('\n');
}

export interface StateEvent {
  t: number; // Date.now()
  observer: number; // node index
  subject: string; // grpcAddr
  id: string;
  from: string | null;
  to: string;
}

/**
 * Polls /_cluster on every running node and records each change of a member's state as seen by each
 * observer. A "false death" is a sighting of state 'dead' for a member whose node is running and not
 * excused (a node the scenario stopped or partitioned away is excused).
 */
export class Monitor {
  readonly events: StateEvent[] = [];
  readonly falseDeaths: StateEvent[] = [];
  suspects = 0;
  polls = 0;
  failedPolls = 0;
  private last = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  /** observer index, subject node → true when 'dead' is acceptable right now */
  allowDeath: (observer: NodeProc, subject: NodeProc) => boolean = () => false;

  constructor(
    private readonly cluster: Cluster,
    private readonly intervalMs = 400,
  ) {}

  /** Starts polling (idempotent). */
  start(): this {
    this.timer ??= setInterval(() => void this.poll(), this.intervalMs);
    return this;
  }

  async poll(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const views = await this.cluster.views();
      const t = Date.now();
      for (const [observer, v] of views) {
        this.polls++;
        if (!v) {
          this.failedPolls++;
          continue;
        }
        for (const m of v.members) {
          const key = `${observer.host.index}|${m.grpcAddr}|${m.id}`;
          const prev = this.last.get(key) ?? null;
          if (prev === m.state) continue;
          this.last.set(key, m.state);
          const ev = {
            t,
            observer: observer.host.index,
            subject: m.grpcAddr,
            id: m.id,
            from: prev,
            to: m.state,
          };
          this.events.push(ev);
          if (m.state === 'suspect') this.suspects++;
          const subject = this.cluster.byGrpcAddr(m.grpcAddr);
          if (
            m.state === 'dead' &&
            subject?.running &&
            subject !== observer &&
            !this.allowDeath(observer, subject)
          ) {
            this.falseDeaths.push(ev);
          }
        }
      }
    } finally {
      this.busy = false;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Events since t. */
  since(t: number): StateEvent[] {
    return this.events.filter((e) => e.t >= t);
  }
}
