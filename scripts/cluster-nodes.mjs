// The nodes of `npm run cluster` (scripts/cluster.mjs): what each one listens on and whom it seeds,
// apart so a test can check them without starting a cluster.

/** Nodes in the demo cluster. */
export const NODES = 3;

/**
 * Where node 1 listens by default; node i (0-based) takes port + i. Each may be moved by setting the
 * variable to node 1's `host:port` (e.g. GOSSIPCACHE_HTTP_ADDR=127.0.0.1:28080 → 28080-28082): three nodes
 * cannot share one port, so the variable names the first and the others follow. memcached is off unless set.
 */
const BASES = {
  GOSSIPCACHE_HTTP_ADDR: '127.0.0.1:8080',
  GOSSIPCACHE_GRPC_ADDR: '127.0.0.1:9090',
  GOSSIPCACHE_GOSSIP_ADDR: '127.0.0.1:7946',
  GOSSIPCACHE_MEMCACHED_ADDR: undefined,
};

/**
 * `name`'s address for node `i`: the caller's `host:port` (or the default) with port + i; port 0 stays 0
 * (any free port, see the log) except for gossip, which the other nodes seed by port. Throws on an address
 * without a port, or one whose + i leaves the port range.
 */
function nodeAddr(name, i, env) {
  const given = env[name]?.trim();
  const addr = given || BASES[name];
  if (!addr) return undefined;
  const m = /^(.*):(\d{1,5})$/.exec(addr);
  if (!m) throw new Error(`${name}=${addr}: expected host:port (node ${i + 1} listens on port + ${i})`);
  const base = Number(m[2]);
  if (base === 0 && name === 'GOSSIPCACHE_GOSSIP_ADDR')
    throw new Error(`${name}=${addr}: the nodes seed each other by port, so it cannot be 0`);
  const port = base === 0 ? 0 : base + i;
  if (port > 65535) throw new Error(`${name}=${addr}: port ${port} is out of range`);
  return { host: m[1], port, addr: `${m[1]}:${port}` };
}

/**
 * Node `i`'s (0-based) name and the environment it adds to the caller's: HTTP 8080+i, gRPC 9090+i,
 * gossip 7946+i on 127.0.0.1 (or from the caller's variables, see BASES), the other nodes as seeds.
 */
export function clusterNode(i, env = process.env) {
  const nodeEnv = { GOSSIPCACHE_ADVERTISE_HOST: '127.0.0.1' };
  for (const name of Object.keys(BASES)) {
    const a = nodeAddr(name, i, env);
    if (a) nodeEnv[name] = a.addr;
  }
  nodeEnv.GOSSIPCACHE_SEEDS = Array.from({ length: NODES }, (_, j) => j)
    .filter((j) => j !== i)
    .map((j) => `127.0.0.1:${nodeAddr('GOSSIPCACHE_GOSSIP_ADDR', j, env).port}`)
    .join(',');
  return { name: `node-${i + 1}`, env: nodeEnv };
}
