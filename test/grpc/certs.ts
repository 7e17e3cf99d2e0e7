// Test PKI made with openssl into a temp dir at test time (no private key is ever committed): a
// cluster CA, node certificates it signs (valid for 127.0.0.1 as server and as client), and a rogue
// CA with a certificate of its own for the reject paths.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TlsFiles } from '../../src/grpc/index.js';

export interface TestPki {
  dir: string;
  /** Signed by the cluster CA; trusts the cluster CA. */
  /** `san` replaces the default subjectAltName `IP:127.0.0.1,DNS:localhost` (first call per name). */
  node: (name: string, san?: string) => Required<Pick<TlsFiles, 'certFile' | 'keyFile' | 'caFile'>>;
  /** Signed by a rogue CA; trusts the cluster CA (so it can connect, but nobody accepts it). */
  rogue: Required<Pick<TlsFiles, 'certFile' | 'keyFile' | 'caFile'>>;
  caFile: string;
  cleanup(): void;
}

export function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

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
    `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n`,
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
  const dir = mkdtempSync(join(tmpdir(), 'gossipcache-tls-'));
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
