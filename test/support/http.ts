// A plain HTTP GET for tests and benchmarks that read a node's endpoints. (The fault suite has its own
// client, netns/client.ts: it never throws, times every request and tells connection errors apart.)

/** GET returning status and body text; throws only when no response came (20 s timeout). */
export async function httpGet(url: string, init?: RequestInit): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(20_000) });
  return { status: res.status, text: await res.text() };
}
