#!/usr/bin/env node
// `npm run cluster`: three cache nodes on 127.0.0.1 in one terminal: a whole cluster
// in one command. HTTP 8080-8082, gRPC 9090-9092, gossip 7946-7948; each node seeds the other two.
// GOSSIPCACHE_MEMCACHED_ADDR=127.0.0.1:11211 adds memcached fronts on 11211-11213 (scripts/cluster-nodes.mjs).
// Logs are prefixed with the node's name. Ctrl-C (or SIGTERM) stops all three gracefully.
//
// Extra environment (GOSSIPCACHE_ORIGIN, LOG_LEVEL, ...) is passed to every node; an address variable
// (GOSSIPCACHE_HTTP_ADDR, _GRPC_ADDR, _GOSSIP_ADDR, _MEMCACHED_ADDR) names node 1's, and node i takes port + i.
// Exit code 0 after a clean stop; 1 if a node stopped on its own or did not stop cleanly. The nodes' stdout is a
// pipe to this script, so on a terminal it asks them for readable lines (LOG_FORMAT=pretty, in colour)
// unless LOG_FORMAT is set; elsewhere they log JSON lines.

import { spawn } from 'node:child_process';
import { delimiter, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { clusterNode, NODES } from './cluster-nodes.mjs';

// The `gossipcache` command (it execs node on dist/cli.js with glibc's mmap threshold fixed: docs/memory.md),
// with this script's node first on its PATH.
const launcher = fileURLToPath(new URL('../bin/gossipcache', import.meta.url));
const PATH = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`;
const pretty = process.stdout.isTTY && process.env.LOG_FORMAT === undefined;
const children = [];

let nodes;
try {
  nodes = Array.from({ length: NODES }, (_, i) => clusterNode(i));
} catch (err) {
  process.stderr.write(`cluster: ${err.message}\n`);
  process.exit(2);
}

for (const { name, env } of nodes) {
  // The child's PID is the node's: the launcher execs it.
  const child = spawn('/bin/sh', [launcher], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // Own process group: Ctrl-C reaches only this script, which forwards one SIGTERM (a node that
    // got the terminal's SIGINT and then our SIGTERM would take the second as "exit now").
    detached: true,
    env: {
      ...process.env,
      PATH,
      ...env,
      ...(pretty ? { LOG_FORMAT: 'pretty', FORCE_COLOR: '1' } : {}),
    },
  });
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => process.stdout.write(`[${name}] ${line}\n`));
  }
  child.on('exit', (code, signal) => {
    process.stdout.write(`[${name}] exited (${signal ?? code})\n`);
    children.splice(children.indexOf(child), 1);
    // A node that stops on its own (a port in use, a bad setting), or fails to stop cleanly, fails the
    // script: its exit code is what a caller (or CI) sees.
    if (!stopping || (code !== null && code !== 0)) failed = true;
    if (children.length === 0) process.exit(failed ? 1 : 0);
    // One node dying on its own stops the demo: a partial cluster confuses.
    if (!stopping) stop('SIGTERM');
  });
  children.push(child);
}

const http = nodes.map((n) => n.env.GOSSIPCACHE_HTTP_ADDR);
process.stdout.write(
  `cluster: 3 nodes on 127.0.0.1 — try: curl http://${http[0]}/default/Tom ; curl http://${http[1]}/_cluster\n`,
);
const memcached = nodes.map((n) => n.env.GOSSIPCACHE_MEMCACHED_ADDR).filter(Boolean);
if (memcached.length > 0) process.stdout.write(`cluster: memcached on ${memcached.join(', ')}\n`);

let stopping = false;
let failed = false;
function stop(signal) {
  if (stopping) {
    for (const c of children) c.kill('SIGKILL');
    return;
  }
  stopping = true;
  for (const c of children) c.kill(signal);
}
process.on('SIGINT', () => stop('SIGTERM'));
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});
process.on('SIGTERM', () => stop('SIGTERM'));
