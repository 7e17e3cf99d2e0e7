// Child processes for benches: spawn servers, read their CPU time from /proc, and make sure every one of them
// is gone when the bench ends — normally, on an exception, or on Ctrl-C.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { freePort } from '../../../test/support/ports.js';
import { sleep } from '../../../test/support/wait.js';

const live = new Set<ChildProcess>();
let hooked = false;

function killAllNow(): void {
  for (const c of live) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  live.clear();
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      killAllNow();
      process.exit(130);
    });
  }
}

export interface Server {
  name: string;
  child: ChildProcess;
  pid: number;
  /** Last lines of stdout+stderr, for error messages. */
  output(): string;
  stop(): Promise<void>;
}

/** Starts a long-running process; it is killed when this process exits if nobody stopped it before. */
export function startProcess(
  name: string,
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Server {
  hookExit();
  const child = spawn(cmd, args, {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let tail = '';
  const keep = (b: Buffer) => {
    tail = (tail + b.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.on('exit', () => live.delete(child));
  child.on('error', (e) => {
    tail += `\nspawn error: ${e.message}`;
  });
  return {
    name,
    child,
    pid: child.pid ?? -1,
    output: () => tail,
    stop: () => stopChild(child),
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
    live.delete(child);
    return;
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(t);
  live.delete(child);
}

export async function stopAll(servers: Iterable<Server | undefined>): Promise<void> {
  await Promise.all([...servers].filter((s): s is Server => s !== undefined).map((s) => s.stop()));
}

let clkTck = 0;
function ticksPerSecond(): number {
  if (clkTck === 0) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/**
 * User + system CPU seconds a process has used so far (all its threads), from /proc/<pid>/stat.
 * Resolution is one clock tick (10 ms), plenty for 10 s runs.
 */
export function cpuSeconds(pid: number): number {
  const { user, sys } = cpuSplit(pid);
  return user + sys;
}

/** User and system (kernel: syscalls, loopback TCP) CPU seconds of a process so far, from /proc/<pid>/stat. */
export function cpuSplit(pid: number): { user: number; sys: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Field 2 (comm) may contain spaces and parentheses: split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime is field 14, stime field 15.
  return { user: Number(rest[11]) / ticksPerSecond(), sys: Number(rest[12]) / ticksPerSecond() };
}

/**
 * One of the benches' stand-in servers, lib/<name>.mjs run by this Node with its port as the argument, on
 * a free 127.0.0.1 port once it listens (stopped again if it does not).
 */
export async function startLibServer(name: string): Promise<{ server: Server; port: number }> {
  const port = await freePort();
  const server = startProcess(name, process.execPath, [
    new URL(`./${name}.mjs`, import.meta.url).pathname,
    String(port),
  ]);
  try {
    await waitForPort(port, 5000, server);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return { server, port };
}

/** Resident set size in bytes, from /proc/<pid>/status. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** Resolves once something accepts TCP connections on host:port; rejects after timeoutMs or if `server` dies. */
export async function waitForPort(port: number, timeoutMs: number, server?: Server): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (server && (server.child.exitCode !== null || server.child.signalCode !== null)) {
      throw new Error(`${server.name} exited before listening on ${port}:\n${server.output()}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) {
      throw new Error(
        `nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms${server ? `:\n${server.output()}` : ''}`,
      );
    }
    await sleep(50);
  }
}

/** Whether an executable is on PATH. */
export function hasTool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs a command to completion and also returns the CPU seconds it used (user + system, its children
 * included): a `sh` wrapper waits for it and then reads its own cutime/cstime from /proc. Used to show how much
 * of the two cores the load generator itself took.
 */
export async function runMeasured(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<{ stdout: string; cpuS: number }> {
  const script = '"$@"; rc=$?; echo "CHILDCPU $(cat /proc/$$/stat)" >&2; exit $rc';
  return new Promise((resolve, reject) => {
    execFile(
      'sh',
      ['-c', script, 'sh', cmd, ...args],
      { env: opts.env ?? process.env, timeout: opts.timeoutMs, maxBuffer: 8 << 20 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`${cmd} failed: ${err.message}\n${stderr.replace(/CHILDCPU.*\n?/, '')}`));
          return;
        }
        const line = /CHILDCPU (.*)/.exec(stderr)?.[1] ?? '';
        const rest = line.slice(line.lastIndexOf(')') + 2).split(' ');
        // rest[0] is field 3; cutime is field 16, cstime field 17.
        const cpuS = (Number(rest[13]) + Number(rest[14])) / ticksPerSecond();
        resolve({ stdout, cpuS });
      },
    );
  });
}
