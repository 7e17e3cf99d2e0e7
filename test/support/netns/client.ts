// Small HTTP client and polling helpers for the fault suite (the test process acts as the clients,
// the load balancer and the monitor).

import http from 'node:http';

export interface HttpResult {
  status: number; // 0 = no response (network error or timeout)
  body: string;
  ms: number;
  error?: string;
  connectionError?: boolean;
}

export const sharedAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/**
 * GET with a hard timeout; never throws (status 0 + error on failure). `connectionError` marks a
 * failure before any response byte on the connection level (reset, refused, broken pipe), the case a
 * load balancer retries on another backend (nginx's default `proxy_next_upstream error`).
 */
export function httpGet(
  url: string,
  timeoutMs = 5_000,
  agent: http.Agent = sharedAgent,
): Promise<HttpResult> {
  return httpGetOnce(url, timeoutMs, agent);
}

type Attempt = HttpResult;

function httpGetOnce(url: string, timeoutMs: number, agent: http.Agent): Promise<Attempt> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    let answered = false;
    const done = (r: Omit<Attempt, 'ms'>) => {
      if (settled) return;
      settled = true;
      resolve({ ...r, ms: performance.now() - t0 });
    };
    const req = http.get(url, { agent, timeout: timeoutMs }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        done({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', (err) => done({ status: 0, body: '', error: err.message }));
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`timeout after ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.on('timeout', () => req.destroy(new Error(`socket idle ${timeoutMs} ms`)));
    req.on('error', (err) => {
      const code = (err as NodeJS.ErrnoException).code ?? err.message;
      const conn = !answered && (code === 'ECONNRESET' || code === 'ECONNREFUSED' || code === 'EPIPE');
      done({ status: 0, body: '', error: code, ...(conn ? { connectionError: true } : {}) });
    });
  });
}

export async function getJson<T = unknown>(url: string, timeoutMs = 3_000): Promise<T | null> {
  const r = await httpGet(url, timeoutMs);
  if (r.status !== 200) return null;
  try {
    return JSON.parse(r.body) as T;
  } catch {
    return null;
  }
}

/** Sums a numeric field found anywhere in a JSON value (e.g. transport.decryptFailures). */
export function sumField(v: unknown, field: string): number | undefined {
  if (!v || typeof v !== 'object') return undefined;
  let total: number | undefined;
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    const n = k === field && typeof x === 'number' ? x : sumField(x, field);
    if (n !== undefined) total = (total ?? 0) + n;
  }
  return total;
}

export interface MemberView {
  id: string;
  state: string; // alive | suspect | dead | left
  incarnation?: number;
  grpcAddr: string;
}

export interface ClusterView {
  members: MemberView[];
  checksum: string;
  ring: string[]; // grpcAddr of alive + suspect members, sorted
  raw: unknown;
}

function pickString(o: Record<string, unknown>, names: string[]): string | undefined {
  for (const n of names) {
    const v = o[n];
    if (typeof v === 'string' || typeof v === 'number') return String(v);
  }
  return undefined;
}

/**
 * Parses GET /_cluster. Tolerant about where the ring checksum and grpcAddr sit (top level or under
 * `ring` / `meta`), so the suite does not break on a field moving; the member fields are the contract.
 */
export function parseClusterView(raw: unknown): ClusterView | null {
  if (!raw || typeof raw !== 'object') return null;
  const o = raw as Record<string, unknown>;
  const list = Array.isArray(o.members) ? o.members : null;
  if (!list) return null;
  const members: MemberView[] = [];
  for (const m of list) {
    if (!m || typeof m !== 'object') continue;
    const r = m as Record<string, unknown>;
    const meta = (r.meta ?? r.metadata ?? {}) as Record<string, unknown>;
    members.push({
      id: pickString(r, ['id', 'name']) ?? '',
      state: String(r.state ?? ''),
      incarnation: typeof r.incarnation === 'number' ? r.incarnation : undefined,
      grpcAddr: pickString(r, ['grpcAddr']) ?? pickString(meta, ['grpcAddr']) ?? '',
    });
  }
  const ringObj = (o.ring && typeof o.ring === 'object' ? o.ring : {}) as Record<string, unknown>;
  const checksum =
    pickString(o, ['ringChecksum', 'checksum', 'ring_checksum']) ??
    (typeof o.ring === 'string' ? o.ring : undefined) ??
    pickString(ringObj, ['checksum']) ??
    '';
  const ring = members
    .filter((m) => m.state === 'alive' || m.state === 'suspect')
    .map((m) => m.grpcAddr)
    .sort();
  return { members, checksum, ring, raw };
}

export async function clusterView(baseUrl: string, timeoutMs = 3_000): Promise<ClusterView | null> {
  return parseClusterView(await getJson(`${baseUrl}/_cluster`, timeoutMs));
}
