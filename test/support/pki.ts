// Test PKI made with openssl into a temp dir at test time (no private key is ever committed): a
// cluster CA, node certificates it signs (usable as gRPC server and client identity), and a rogue CA
// with a certificate of its own for the reject paths.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TlsFiles } from '../../src/grpc/index.js';

export type NodeTlsFiles = Required<Pick<TlsFiles, 'certFile' | 'keyFile' | 'caFile'>>;

export interface TestPki {
  dir: string;
  /** The cluster CA's certificate. */
  caFile: string;
  /**
   * A certificate signed by the cluster CA, with the CA to trust. `san` replaces the default
   * subjectAltName `IP:127.0.0.1,DNS:localhost` (first call per name; later calls return the same files).
   */
  node: (name: string, san?: string) => NodeTlsFiles;
  /** Signed by a rogue CA; trusts the cluster CA (so it can connect, but nobody accepts it). */
  rogue: NodeTlsFiles;
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString().trim() || e.message}`);
  }
}

export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/** subjectAltName for certificates valid for these IP addresses. */
export const ipSan = (ips: string[]) => ips.map((ip) => `IP:${ip}`).join(',');

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function makeCa(dir: string, name: string): void {
  openssl(
    [
      'req',
      '-x509',
      ...KEY,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
    ],
    dir,
  );
}

function makeCert(dir: string, ca: string, name: string, san = 'IP:127.0.0.1,DNS:localhost'): void {
  writeFileSync(
    join(dir, `${name}.ext`),
    `subjectAltName=${san}\nkeyUsage=digitalSignature,keyEncipherment\n` +
      'extendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n',
  );
  openssl(['req', ...KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    ],
    dir,
  );
}

export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'gossipcache-pki-'));
  makeCa(dir, 'ca');
  makeCa(dir, 'rogue-ca');
  makeCert(dir, 'rogue-ca', 'rogue');
  const made = new Set<string>();
  const caFile = join(dir, 'ca.crt');
  return {
    dir,
    caFile,
    node(name, san) {
      if (!made.has(name)) makeCert(dir, 'ca', name, san);
      made.add(name);
      return { certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`), caFile };
    },
    rogue: { certFile: join(dir, 'rogue.crt'), keyFile: join(dir, 'rogue.key'), caFile },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
