// A bounded open-loop load generator: `rate` GETs per second for at most `durationMs`, spread
// round-robin over the targets a load balancer would use right now (targets() is read per request,
// so the suite can take a node out of rotation before killing it, as a health check would).
// Bounded in time, in total requests and in requests in flight; a request that cannot be sent because
// maxInFlight is reached is counted as `shed`, not silently dropped.

import http from 'node:http';
import { httpGet } from './client.js';
import { expectedValue } from './origin.js';

export interface LoadOptions {
  rate: number; // requests per second
  durationMs: number;
  targets: () => string[]; // base URLs, e.g. http://10.213.5.10:8080
  key: (i: number) => string;
  group?: string;
  timeoutMs?: number; // per request; generous (packet loss means TCP retransmits)
  maxInFlight?: number;
}

export interface Failure {
  at: number; // ms since start
  target: string;
  key: string;
  status: number;
  error: string;
}

export interface LoadReport {
  sent: number;
  ok: number;
  failed: number;
  shed: number;
  /** Requests retried once on another node after a connection-level failure (balancer behaviour). */
  retried: number;
  durationMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  failures: Failure[]; // the first 20
  perTarget: Record<string, number>;
}

export interface RunningLoad {
  done: Promise<LoadReport>;
  stop(): Promise<LoadReport>;
  inFlight(target?: string): number;
  sent(): number;
}

export function startLoad(opts: LoadOptions): RunningLoad {
  const group = opts.group ?? 'default';
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const maxInFlight = opts.maxInFlight ?? 400;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const retryAgent = new http.Agent({ keepAlive: false });
  const t0 = performance.now();
  const latencies: number[] = [];
  const failures: Failure[] = [];
  const perTarget: Record<string, number> = {};
  const inflight = new Map<string, number>();
  let sent = 0;
  let ok = 0;
  let failed = 0;
  let shed = 0;
  let retried = 0;
  let rr = 0;
  let stopped = false;
  let pending = 0;
  let finish!: (r: LoadReport) => void;
  const done = new Promise<LoadReport>((r) => (finish = r));

  const report = (): LoadReport => {
    const sorted = [...latencies].sort((a, b) => a - b);
    const q = (p: number) =>
      sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]) : 0;
    return {
      sent,
      ok,
      failed,
      shed,
      retried,
      durationMs: Math.round(performance.now() - t0),
      p50Ms: q(0.5),
      p99Ms: q(0.99),
      maxMs: sorted.length ? Math.round(sorted[sorted.length - 1]) : 0,
      failures: failures.slice(0, 20),
      perTarget,
    };
  };

  const maybeFinish = () => {
    if (stopped && pending === 0) {
      agent.destroy();
      finish(report());
    }
  };

  const fire = () => {
    const targets = opts.targets();
    if (targets.length === 0) {
      shed++;
      return;
    }
    if (pending >= maxInFlight) {
      shed++;
      return;
    }
    const target = targets[rr++ % targets.length];
    const key = opts.key(sent);
    sent++;
    pending++;
    inflight.set(target, (inflight.get(target) ?? 0) + 1);
    perTarget[target] = (perTarget[target] ?? 0) + 1;
    const at = Math.round(performance.now() - t0);
    const path = `/${group}/${encodeURIComponent(key)}`;
    void httpGet(target + path, timeoutMs, agent)
      .then((r) => {
        if (!r.connectionError) return r;
        // As a balancer does: one retry on another backend when the connection failed before any answer.
        retried++;
        const now = opts.targets().filter((t) => t !== target);
        // On a new connection, as a balancer does: a pooled one may be an idle keep-alive socket the
        // server is closing right now (after a stall of this process the backlog fires at once and
        // picks up such sockets; the reset of the first try was most likely one of them).
        return now.length ? httpGet(now[rr++ % now.length] + path, timeoutMs, retryAgent) : r;
      })
      .then((r) => {
        pending--;
        inflight.set(target, (inflight.get(target) ?? 1) - 1);
        latencies.push(performance.now() - t0 - at);
        if (r.status === 200 && r.body === expectedValue(key)) ok++;
        else {
          failed++;
          if (failures.length < 20) {
            failures.push({ at, target, key, status: r.status, error: r.error ?? r.body.slice(0, 200) });
          }
        }
        maybeFinish();
      });
  };

  const tick = setInterval(() => {
    const elapsed = performance.now() - t0;
    if (elapsed >= opts.durationMs) {
      stopped = true;
      clearInterval(tick);
      maybeFinish();
      return;
    }
    const due = Math.floor((elapsed / 1000) * opts.rate);
    while (sent + shed < due) fire();
  }, 10);

  return {
    done,
    stop() {
      if (!stopped) {
        stopped = true;
        clearInterval(tick);
        maybeFinish();
      }
      return done;
    },
    inFlight: (target) => (target ? (inflight.get(target) ?? 0) : pending),
    sent: () => sent,
  };
}
