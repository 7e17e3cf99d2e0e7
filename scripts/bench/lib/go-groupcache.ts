// Builds the Go groupcache baseline of the front and peer benches (scripts/bench/go-groupcache), once per
// bench module process, in a temporary directory removed when the process exits.
// Where Go can reach its module proxy, `go build` fetches groupcache itself. Offline (this project's bench
// box) point BENCH_GO_REPLACE at local checkouts:
//   BENCH_GO_REPLACE='github.com/golang/groupcache=/src/groupcache,github.com/golang/protobuf=/src/protobuf,google.golang.org/protobuf=/src/protobuf-go'
// or BENCH_GROUPCACHE_BIN at a binary built elsewhere. Without any of these the row is skipped, with the reason.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../../test/support/ports.js';
import { warmPaths } from './cluster.js';
import { hasTool, type Server, startProcess, waitForPort } from './proc.js';

const SOURCE = new URL('../go-groupcache/', import.meta.url).pathname;

let built: { bin?: string; reason?: string } | undefined;

/** The path of a built Go groupcache node, or why there is none. */
export function goGroupcache(): { bin?: string; reason?: string } {
  built ??= build();
  return built;
}

/**
 * One Go groupcache node, its own only peer, with `paths` warm in its main cache (the front and
 * memcached benches' subject): the process and its HTTP front's port. Stopped again if it fails to start.
 */
export async function startGoNode(bin: string, paths: string[]): Promise<{ server: Server; port: number }> {
  const [peer, front] = [await freePort(), await freePort()];
  const self = `http://127.0.0.1:${peer}`;
  const server = startProcess('go-groupcache', bin, [
    `-self=${self}`,
    `-peers=${self}`,
    `-peer-listen=127.0.0.1:${peer}`,
    `-front=127.0.0.1:${front}`,
  ]);
  try {
    await waitForPort(front, 10000, server);
    await warmPaths(front, paths);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return { server, port: front };
}

function build(): { bin?: string; reason?: string } {
  const given = process.env.BENCH_GROUPCACHE_BIN;
  if (given)
    return existsSync(given) ? { bin: given } : { reason: `BENCH_GROUPCACHE_BIN=${given} does not exist` };
  if (!hasTool('go'))
    return { reason: 'go not found (apt-get install golang-go), or set BENCH_GROUPCACHE_BIN' };
  const dir = mkdtempSync(join(tmpdir(), 'gc-bench-go-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  cpSync(SOURCE, dir, { recursive: true });
  const env = { ...process.env, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' };
  const go = (...args: string[]) =>
    execFileSync('go', args, { cwd: dir, env, stdio: 'pipe', timeout: 180_000 });
  try {
    for (const r of (process.env.BENCH_GO_REPLACE ?? '').split(',').filter(Boolean))
      go('mod', 'edit', `-replace=${r}`);
    go('build', '-o', 'gcnode', '.');
    return { bin: join(dir, 'gcnode') };
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    const why = (err.stderr?.toString() || err.message).replace(/\s+/g, ' ').slice(0, 200);
    return { reason: `go build failed (offline? set BENCH_GO_REPLACE): ${why}` };
  }
}
