// The nodes of `npm run cluster` (scripts/cluster.mjs): what each one listens on and whom it seeds,
// apart so a test can check them without starting a cluster.

/** Nodes in the demo cluster. */
export const NODES = 3;

/**
 * Node `i`'s (0-based) name and the environment it adds to the caller's: HTTP 8080+i, gRPC 9090+i,
 * gossip 7946+i on 127.0.0.1, the other nodes as seeds. With GOSSIPCACHE_MEMCACHED_ADDR set (`host:port`,
 * e.g. 127.0.0.1:11211) each node serves memcached on that host at port + i — three nodes cannot share one
 * port (the second would fail to bind and stop the demo); port 0 stays 0 (any free port, see the log).
 * Throws on an address without a port, or one whose + i leaves the port range.
 */
export function clusterNode(i, env = process.env) {
  const seeds = Array.from({ length: NODES }, (_, j) => j)
    .filter((j) => j !== i)
    .map((j) => `127.0.0.1:${7946 + j}`)
    .join(',');
  const nodeEnv = {
    GOSSIPCACHE_HTTP_ADDR: `127.0.0.1:${8080 + i}`,
    GOSSIPCACHE_GRPC_ADDR: `127.0.0.1:${9090 + i}`,
    GOSSIPCACHE_GOSSIP_ADDR: `127.0.0.1:${7946 + i}`,
    GOSSIPCACHE_ADVERTISE_HOST: '127.0.0.1',
    GOSSIPCACHE_SEEDS: seeds,
  };
  const memcached = env.GOSSIPCACHE_MEMCACHED_ADDR?.trim();
  if (memcached) {
    const m = /^(.*):(\d{1,5})$/.exec(memcached);
    if (!m) {
      throw new Error(
        `GOSSIPCACHE_MEMCACHED_ADDR=${memcached}: expected host:port (node ${i + 1} listens on port + ${i})`,
      );
    }
    const base = Number(m[2]);
    const port = base === 0 ? 0 : base + i;
    if (port > 65535)
      throw new Error(`GOSSIPCACHE_MEMCACHED_ADDR=${memcached}: port ${port} is out of range`);
    nodeEnv.GOSSIPCACHE_MEMCACHED_ADDR = `${m[1]}:${port}`;
  }
  return { name: `node-${i + 1}`, env: nodeEnv };
}
