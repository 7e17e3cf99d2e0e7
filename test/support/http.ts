// A plain HTTP GET for tests and benchmarks that read a node's endpoints. (The fault suite has its own
// client, netns/client.ts: it never throws, times every request and tells connection errors apart.)
// And listenLocal, for tests that serve an HTTP front or a fake origin in-process.

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** GET returning status and body text; throws only when no response came (20 s timeout). */
export async function httpGet(url: string, init?: RequestInit): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(20_000) });
  return { status: res.status, text: await res.text() };
}

/** Starts `server` listening on a free port of 127.0.0.1; resolves with its base URL (http://127.0.0.1:port). */
export async function listenLocal(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
