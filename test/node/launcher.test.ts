// The `gossipcache` command (bin/gossipcache): what `npm start`, `npm run cluster`, the package's "bin" and
// the Docker image run. It must exec the node in its own process (same PID, so stopping by PID, signals and
// exit codes work as with `node dist/cli.js`) with glibc's mmap threshold fixed, unless the environment
// already sets one (docs/memory.md, "The allocator": without it RSS drifts above the bound under churn).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, describe, test } from 'node:test';
import { CLI, LAUNCHER, nodePorts, startCli, stopCli, waitHealthy } from '../support/cli-node.js';
import { waitFor } from '../support/wait.js';

const ROOT = join(import.meta.dirname, '../..');
const THRESHOLD = 'MALLOC_MMAP_THRESHOLD_';

// A stand-in `node` first on the PATH: prints the threshold variables it was given and its arguments.
const tmp = mkdtempSync(join(tmpdir(), 'gossipcache-launcher-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const fakeBin = join(tmp, 'fake-bin');
mkdirSync(fakeBin);
writeFileSync(
  join(fakeBin, 'node'),
  `#!/bin/sh\nprintf '%s\\n' "threshold=\${${THRESHOLD}-unset}" "tunables=\${GLIBC_TUNABLES-unset}" "pid=$$"\nprintf 'arg=%s\\n' "$@"\nexit 7\n`,
);
chmodSync(join(fakeBin, 'node'), 0o755);

/** Runs `launcher` (default: bin/gossipcache) with the stand-in node and `env`; what the stand-in saw. */
function launch(env: Record<string, string>, launcher = LAUNCHER, args: string[] = ['--help']) {
  const r = spawnSync(launcher, args, {
    env: { PATH: `${fakeBin}:/usr/bin:/bin`, ...env },
    encoding: 'utf8',
  });
  assert.equal(r.error, undefined);
  const lines = r.stdout.trim().split('\n');
  const get = (name: string) => lines.find((l) => l.startsWith(`${name}=`))?.slice(name.length + 1);
  return {
    status: r.status,
    pid: Number(get('pid')),
    launcherPid: r.pid,
    threshold: get('threshold'),
    tunables: get('tunables'),
    args: lines.filter((l) => l.startsWith('arg=')).map((l) => l.slice(4)),
  };
}

describe('bin/gossipcache', () => {
  test('sets MALLOC_MMAP_THRESHOLD_=131072 and runs node, young generation capped, on dist/cli.js with the arguments; exit code is node’s', () => {
    const r = launch({});
    assert.equal(r.threshold, '131072');
    assert.equal(r.tunables, 'unset');
    assert.equal(r.args[0], '--max-semi-space-size=8');
    assert.equal(realpathSync(r.args[1]), realpathSync(CLI));
    assert.deepEqual(r.args.slice(2), ['--help']);
    assert.equal(r.status, 7);
  });

  test('a young-generation size NODE_OPTIONS sets is kept (a flag on the command line would override it)', () => {
    for (const opt of ['--max-semi-space-size=32', '--max_semi_space_size=32', '--semi-space-size=4']) {
      const r = launch({ NODE_OPTIONS: `--enable-source-maps ${opt}` });
      assert.equal(realpathSync(r.args[0]), realpathSync(CLI), opt);
    }
    assert.equal(launch({ NODE_OPTIONS: '--enable-source-maps' }).args[0], '--max-semi-space-size=8');
  });

  test('a threshold the environment sets is kept, in either spelling', () => {
    assert.equal(launch({ [THRESHOLD]: '262144' }).threshold, '262144');
    const tuned = launch({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=262144' });
    assert.equal(tuned.threshold, 'unset', 'MALLOC_MMAP_THRESHOLD_ could override GLIBC_TUNABLES');
    assert.equal(tuned.tunables, 'glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=262144');
    // Other tunables do not count as a threshold.
    assert.equal(launch({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }).threshold, '131072');
  });

  test('found through a relative symlink elsewhere, as npm installs it in node_modules/.bin', () => {
    const dotBin = join(tmp, 'node_modules', '.bin');
    mkdirSync(dotBin, { recursive: true });
    const link = join(dotBin, 'gossipcache');
    symlinkSync(relative(dotBin, LAUNCHER), link);
    const r = launch({}, link, ['--version']);
    assert.equal(realpathSync(r.args[1]), realpathSync(CLI));
    assert.equal(r.threshold, '131072');
  });

  test('npm start, the package bin and npm run cluster run it', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    assert.equal(pkg.bin.gossipcache, './bin/gossipcache');
    assert.ok(pkg.files.includes('bin'), 'bin/ is published');
    assert.match(pkg.scripts.start, /&& exec sh bin\/gossipcache$/);
    assert.match(readFileSync(join(ROOT, 'scripts/cluster.mjs'), 'utf8'), /spawn\('\/bin\/sh', \[launcher\]/);
  });

  test("npm start's shell becomes the node: stopping npm start's process by PID stops the node", () => {
    // npm runs a script with `sh -c` and passes SIGTERM on to that shell only; without exec the node
    // was the shell's child, and `kill <npm start's PID>` left it running, adopted by init.
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    const script = String(pkg.scripts.start).replace(/^npm run build --silent && /, '');
    const r = launch({}, '/bin/sh', ['-c', `cd '${ROOT}' && ${script}`]);
    assert.equal(r.status, 7);
    assert.equal(r.pid, r.launcherPid, 'the stand-in node runs in the process sh -c was started as');
    assert.ok(r.args.length > 0, 'the stand-in ran');
  });

  test('the real node: same PID, the threshold in its environment, the young generation capped, exit 0 on SIGTERM', {
    skip: process.platform !== 'linux' && 'reads /proc',
  }, async () => {
    const node = startCli(await nodePorts(), {}, { launcher: true });
    try {
      await waitHealthy(node);
      const pid = node.child.pid!;
      assert.equal(readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), 'node', 'the launcher execs node');
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      assert.ok(
        env.includes(`${THRESHOLD}=131072`),
        `environment: ${env.filter((v) => v.startsWith('MALLOC'))}`,
      );
      assert.doesNotMatch(node.output(), /mmap threshold is not fixed/);
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      assert.ok(argv.includes('--max-semi-space-size=8'), `node's arguments: ${argv.join(' ')}`);
    } finally {
      assert.equal(await stopCli(node), 0, node.output());
    }
  });

  test('started without it (node dist/cli.js), the node says at start that the threshold floats', {
    skip: process.platform !== 'linux' && 'glibc',
  }, async () => {
    const node = startCli(await nodePorts(), {});
    try {
      await waitHealthy(node);
      // Logged before the node listens, but its stdout reaches us apart from the health check's reply.
      await waitFor(
        'the warning',
        () => /mmap threshold is not fixed.*MALLOC_MMAP_THRESHOLD_=131072/.test(node.output()),
        {
          timeoutMs: 10_000,
          state: () => node.output(),
        },
      );
    } finally {
      assert.equal(await stopCli(node), 0, node.output());
    }
  });

  test('the real node: a bad flag still exits 2', () => {
    const r = spawnSync('/bin/sh', [LAUNCHER, '--no-such-flag'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /invalid configuration: --no-such-flag/);
  });
});
