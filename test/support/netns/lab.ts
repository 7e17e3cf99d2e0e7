// Network-namespace plumbing and process control for the multi-host fault suite
// (test/cluster/).
//
// Each gossipcache node runs in its own network namespace with its own IP, joined to the others by a
// veth pair on a bridge the harness creates, like containers on one host. The bridge gets an IP in
// the root namespace too, so the test process (client, origin, monitor) reaches every node directly.
// The subnet is a private 10.213.X.0/24 that exists only on that bridge; the namespaces have no
// default route, so no traffic leaves the machine.
//
// Everything created carries the prefix `gcft<id>` (id = 4 chars, unique per run; interface names
// stay ≤ 15 chars). A pid file per run lets a later run remove what a crashed run left behind without
// touching a run that is still going. Teardown is synchronous so it also works from process 'exit'.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

export const PREFIX = 'gcft';
const PID_DIR = '/run/gossipcache-fault-suite';

/** Runs a command, returns stdout; throws with the command line and stderr on failure. */
export function sh(cmd: string, args: string[], opts: { input?: string; quiet?: boolean } = {}): string {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8',
      input: opts.input,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    if (opts.quiet) return '';
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

function shQuiet(cmd: string, args: string[]): void {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
  } catch {
    // teardown is best effort: the thing may already be gone
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Returns null when this process may create network namespaces, veth pairs, bridges and iptables
 * rules inside a namespace; otherwise one line saying what is missing. Detected by trying.
 */
export function netnsUnavailableReason(): string | null {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  for (const tool of ['ip', 'iptables']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `\`${tool}\` is not installed (apt-get install -y iproute2 iptables)`;
    }
  }
  const ns = `${PREFIX}probe${process.pid % 100000}`;
  try {
    sh('ip', ['netns', 'add', ns]);
    sh('ip', [
      'netns',
      'exec',
      ns,
      'iptables',
      '-A',
      'INPUT',
      '-m',
      'statistic',
      '--mode',
      'random',
      '--probability',
      '0.1',
      '-j',
      'DROP',
    ]);
    sh('ip', ['link', 'add', `${ns}a`, 'type', 'veth', 'peer', 'name', `${ns}b`]);
    return null;
  } catch (err) {
    return `ip netns/veth/iptables not permitted here: ${(err as Error).message.split('\n')[0]}`;
  } finally {
    shQuiet('ip', ['link', 'del', `${ns}a`]);
    shQuiet('ip', ['netns', 'del', ns]);
  }
}

/** Removes namespaces, links and hosts files of earlier runs whose process is gone. */
export function cleanStaleRuns(): string[] {
  const ids = new Set<string>();
  const re = new RegExp(`^${PREFIX}([a-z0-9]{4})`);
  for (const line of sh('ip', ['netns', 'list'], { quiet: true }).split('\n')) {
    const m = re.exec(line.trim());
    if (m) ids.add(m[1]);
  }
  for (const line of sh('ip', ['-o', 'link', 'show'], { quiet: true }).split('\n')) {
    const name = line.split(':')[1]?.trim().split('@')[0] ?? '';
    const m = re.exec(name);
    if (m) ids.add(m[1]);
  }
  if (existsSync('/etc/netns')) {
    for (const name of readdirSync('/etc/netns')) {
      const m = re.exec(name);
      if (m) ids.add(m[1]);
    }
  }
  const cleaned: string[] = [];
  for (const id of ids) {
    if (id === 'prob') continue; // netnsUnavailableReason's own probe cleans itself
    const pidFile = join(PID_DIR, id);
    const owner = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
    if (owner > 0 && pidAlive(owner)) continue; // a run in progress (someone else's): leave it alone
    teardownById(id);
    cleaned.push(id);
  }
  return cleaned;
}

function teardownById(id: string): void {
  const prefix = PREFIX + id;
  for (const line of sh('ip', ['netns', 'list'], { quiet: true }).split('\n')) {
    const ns = line.trim().split(' ')[0];
    if (!ns?.startsWith(prefix)) continue;
    for (const pid of sh('ip', ['netns', 'pids', ns], { quiet: true }).split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    shQuiet('ip', ['netns', 'del', ns]);
  }
  for (const line of sh('ip', ['-o', 'link', 'show'], { quiet: true }).split('\n')) {
    const name = line.split(':')[1]?.trim().split('@')[0] ?? '';
    if (name.startsWith(prefix)) shQuiet('ip', ['link', 'del', name]);
  }
  if (existsSync('/etc/netns')) {
    for (const name of readdirSync('/etc/netns')) {
      if (name.startsWith(prefix)) rmSync(join('/etc/netns', name), { recursive: true, force: true });
    }
  }
  rmSync(join(PID_DIR, id), { force: true });
}

export interface Host {
  index: number;
  ns: string;
  ip: string;
}

/** The bridge, its subnet and the namespaces on it. Always call destroy() (also registered on exit). */
export class NetLab {
  readonly id: string;
  readonly bridge: string;
  readonly subnet: string; // e.g. 10.213.42
  readonly hostIp: string; // the root namespace's address on the bridge
  readonly hosts: Host[] = [];
  private destroyed = false;
  private readonly onExit = () => this.destroy();
  private readonly onSignal = (sig: NodeJS.Signals) => {
    this.destroy();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };

  private constructor(id: string, subnet: string) {
    this.id = id;
    this.bridge = `${PREFIX}${id}b`;
    this.subnet = subnet;
    this.hostIp = `${subnet}.1`;
  }

  static create(): NetLab {
    cleanStaleRuns();
    const id = randomBytes(3).readUIntBE(0, 3).toString(36).padStart(4, '0').slice(-4);
    const used = sh('ip', ['-4', '-o', 'addr', 'show']);
    let subnet = '';
    for (let tries = 0; tries < 100 && !subnet; tries++) {
      const x = 1 + Math.floor(Math.random() * 250);
      if (!used.includes(`10.213.${x}.`)) subnet = `10.213.${x}`;
    }
    if (!subnet) throw new Error('no free 10.213.X.0/24 subnet for the test bridge');
    const lab = new NetLab(id, subnet);
    mkdirSync(PID_DIR, { recursive: true });
    writeFileSync(join(PID_DIR, id), String(process.pid));
    process.on('exit', lab.onExit);
    process.on('SIGINT', lab.onSignal);
    process.on('SIGTERM', lab.onSignal);
    try {
      sh('ip', ['link', 'add', lab.bridge, 'type', 'bridge']);
      sh('ip', ['addr', 'add', `${lab.hostIp}/24`, 'dev', lab.bridge]);
      sh('ip', ['link', 'set', lab.bridge, 'up']);
    } catch (err) {
      lab.destroy();
      throw err;
    }
    return lab;
  }

  /** Adds one namespace with its own IP on the bridge (subnet.10 + index). */
  addHost(): Host {
    const index = this.hosts.length;
    const ns = `${PREFIX}${this.id}n${index}`;
    const outer = `${PREFIX}${this.id}h${index}`;
    const inner = `${PREFIX}${this.id}e${index}`;
    const ip = `${this.subnet}.${10 + index}`;
    sh('ip', ['netns', 'add', ns]);
    sh('ip', ['link', 'add', outer, 'type', 'veth', 'peer', 'name', inner]);
    sh('ip', ['link', 'set', inner, 'netns', ns]);
    sh('ip', ['link', 'set', outer, 'master', this.bridge, 'up']);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', ns, 'link', 'set', inner, 'name', 'eth0']);
    sh('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    const host = { index, ns, ip };
    this.hosts.push(host);
    this.writeHostsFile(host, {});
    return host;
  }

  /**
   * Writes /etc/netns/<ns>/hosts, which `ip netns exec` bind-mounts over /etc/hosts, so glibc's
   * getaddrinfo (Node's dns.lookup) resolves these names inside that namespace only.
   */
  writeHostsFile(host: Host, names: Record<string, string[]>): void {
    const dir = `/etc/netns/${host.ns}`;
    mkdirSync(dir, { recursive: true });
    const lines = ['127.0.0.1 localhost', `${host.ip} node${host.index}`];
    for (const [name, ips] of Object.entries(names)) for (const ip of ips) lines.push(`${ip} ${name}`);
    writeFileSync(join(dir, 'hosts'), `${lines.join('\n')}\n`);
  }

  /** Same DNS names in every namespace. */
  setDns(names: Record<string, string[]>): void {
    for (const h of this.hosts) this.writeHostsFile(h, names);
  }

  /**
   * Applies a filter-table ruleset inside a namespace with ONE iptables-restore call (iptables calls
   * serialise on the machine-wide xtables lock, so one call per rule made a 5-node partition take
   * seconds to build, half-applied meanwhile). Asynchronous on purpose: the test process is also the
   * clients and the origin, and must not stall while a fault is being applied.
   */
  restore(host: Host, rules: string[], flush: boolean): Promise<void> {
    const input = `*filter\n${flush ? ':INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n' : ''}${rules.map((r) => `${r}\n`).join('')}COMMIT\n`;
    const args = ['netns', 'exec', host.ns, 'iptables-restore', '-w', ...(flush ? [] : ['--noflush'])];
    return new Promise((resolve, reject) => {
      const child = spawn('ip', args, { stdio: ['pipe', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('exit', (code) =>
        code === 0
          ? resolve()
          : reject(new Error(`iptables-restore in ${host.ns} failed (${code}): ${stderr.trim()}\n${input}`)),
      );
      child.stdin?.end(input);
    });
  }

  /** Drops every packet between the two groups, in both directions, inside the namespaces. */
  async partition(a: Host[], b: Host[]): Promise<void> {
    const cut = (h: Host, other: Host[]) =>
      this.restore(
        h,
        other.flatMap((o) => [`-I INPUT -s ${o.ip} -j DROP`, `-I OUTPUT -d ${o.ip} -j DROP`]),
        false,
      );
    await Promise.all([...a.map((h) => cut(h, b)), ...b.map((h) => cut(h, a))]);
  }

  /** Drops a random share of packets arriving on each host's eth0. */
  async packetLoss(hosts: Host[], probability: number): Promise<void> {
    const rule = `-I INPUT -i eth0 -m statistic --mode random --probability ${probability} -j DROP`;
    await Promise.all(hosts.map((h) => this.restore(h, [rule], false)));
  }

  /** Removes every rule the suite added (partition, loss): empty INPUT and OUTPUT chains. */
  async clearRules(hosts: Host[] = this.hosts): Promise<void> {
    await Promise.all(hosts.map((h) => this.restore(h, [], true)));
  }

  rules(host: Host): string {
    return sh('ip', ['netns', 'exec', host.ns, 'iptables', '-S']);
  }

  /** Kills every process in the namespaces, deletes them, the links and the hosts files. Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    teardownById(this.id);
    process.off('exit', this.onExit);
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
  }

  /** What of this run still exists (for the no-leftovers assertion). */
  leftovers(): string[] {
    const prefix = PREFIX + this.id;
    const out: string[] = [];
    for (const line of sh('ip', ['netns', 'list'], { quiet: true }).split('\n')) {
      if (line.startsWith(prefix)) out.push(`netns ${line.split(' ')[0]}`);
    }
    for (const line of sh('ip', ['-o', 'link', 'show'], { quiet: true }).split('\n')) {
      const name = line.split(':')[1]?.trim().split('@')[0] ?? '';
      if (name.startsWith(prefix)) out.push(`link ${name}`);
    }
    if (existsSync('/etc/netns')) {
      for (const n of readdirSync('/etc/netns')) if (n.startsWith(prefix)) out.push(`/etc/netns/${n}`);
    }
    return out;
  }
}

/** How to start a node: the real CLI, or a stand-in that speaks the same env/HTTP contract. */
export interface NodeCommand {
  label: string;
  args: string[]; // after the node binary
}

export function defaultNodeCommand(repoRoot: string): NodeCommand {
  if (process.env.GOSSIPCACHE_FAULT_NODE === 'standin') {
    return { label: 'stand-in', args: ['--import', 'tsx', join(repoRoot, 'test/support/netns/standin.ts')] };
  }
  return { label: 'dist/cli.js', args: [join(repoRoot, 'dist/cli.js')] };
}

/** One gossipcache process inside a namespace. Its output goes to a log file and a short tail. */
export class NodeProc {
  readonly host: Host;
  readonly httpUrl: string;
  readonly grpcAddr: string;
  child: ChildProcess | null = null;
  starts = 0;
  exitInfo: { code: number | null; signal: string | null } | null = null;
  private tail: string[] = [];
  private exited: Promise<void> = Promise.resolve();

  constructor(
    host: Host,
    private readonly command: NodeCommand,
    private readonly env: Record<string, string>,
    private readonly logDir: string,
  ) {
    this.host = host;
    this.httpUrl = `http://${host.ip}:8080`;
    this.grpcAddr = `${host.ip}:9090`;
  }

  get running(): boolean {
    return this.child !== null && this.exitInfo === null;
  }

  start(extraEnv: Record<string, string> = {}): void {
    if (this.running) throw new Error(`node${this.host.index} is already running`);
    this.starts++;
    this.exitInfo = null;
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (v !== undefined && !k.startsWith('GOSSIPCACHE_') && k !== 'NODE_TEST_CONTEXT') env[k] = v;
    }
    Object.assign(env, { LOG_LEVEL: 'info', GOSSIPCACHE_ADVERTISE_HOST: this.host.ip }, this.env, extraEnv);
    mkdirSync(this.logDir, { recursive: true });
    const log = createWriteStream(join(this.logDir, `node${this.host.index}.log`), { flags: 'a' });
    log.write(`--- start #${this.starts} at ${new Date().toISOString()} (${this.command.label})\n`);
    // Like a container, each node also gets its own UTS namespace and hostname (the default member id
    // is `<hostname>-<gossip port>`, so five processes sharing the machine's hostname would collide).
    // `ip netns exec`, `unshare` and `sh -c 'exec ...'` all exec in place: child.pid is the node itself.
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        this.host.ns,
        'unshare',
        '--uts',
        'sh',
        '-c',
        'hostname "$0" && exec "$@"',
        `node${this.host.index}`,
        process.execPath,
        ...this.command.args,
      ],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    const onData = (chunk: Buffer) => {
      log.write(chunk);
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line) this.tail.push(line);
      }
      if (this.tail.length > 80) this.tail.splice(0, this.tail.length - 80);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        log.end(`--- exit code=${code} signal=${signal} at ${new Date().toISOString()}\n`);
        resolve();
      });
    });
  }

  /** Sends a signal; with wait, resolves when the process has exited (SIGKILL after graceMs). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 15_000): Promise<void> {
    if (!this.running || !this.child?.pid) return;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  logTail(lines = 30): string {
    return this.tail.slice(-lines).join('\n');
  }

  url(path: string): string {
    return this.httpUrl + path;
  }
}
