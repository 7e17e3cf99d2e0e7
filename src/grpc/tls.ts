// TLS for the gRPC server and the peer clients, from PEM files. With a CA file the server requires
// and verifies client certificates (mutual TLS) and clients verify the server against the same CA:
// a process without a certificate signed by the cluster's CA can then neither fetch values from the
// cluster nor serve (poisoned) values to it.

import { readFileSync } from 'node:fs';
import { type ChannelCredentials, credentials, ServerCredentials } from '@grpc/grpc-js';

/** PEM files of one process. The same files serve both as server identity and as client identity. */
export interface TlsFiles {
  /** This process's certificate chain (PEM). Presented by the server and, to peers, by the client. */
  certFile: string;
  /** The private key of `certFile` (PEM). */
  keyFile: string;
  /**
   * CA bundle (PEM) that signs the cluster's certificates. Set = mutual TLS: the server rejects
   * clients without a certificate from this CA, and clients accept only servers signed by it.
   * Unset = server-only TLS; clients verify servers against the system's root CAs.
   */
  caFile?: string;
  /**
   * The name peers' certificates carry, when it is not the host of their address (e.g. certificates
   * for `cache.internal` while the ring holds IP addresses). Clients only.
   */
  serverName?: string;
}

function read(what: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read TLS ${what} ${JSON.stringify(file)}: ${(err as Error).message}`);
  }
}

/** Server credentials: insecure without `tls`; TLS; or mutual TLS when `tls.caFile` is set. */
export function serverCredentials(tls?: TlsFiles): ServerCredentials {
  if (!tls) return ServerCredentials.createInsecure();
  const ca = tls.caFile ? read('caFile', tls.caFile) : null;
  return ServerCredentials.createSsl(
    ca,
    [{ cert_chain: read('certFile', tls.certFile), private_key: read('keyFile', tls.keyFile) }],
    ca !== null,
  );
}

/** Client credentials presenting this process's certificate; insecure without `tls`. */
export function channelCredentials(tls?: TlsFiles): ChannelCredentials {
  if (!tls) return credentials.createInsecure();
  return credentials.createSsl(
    tls.caFile ? read('caFile', tls.caFile) : null,
    read('keyFile', tls.keyFile),
    read('certFile', tls.certFile),
  );
}

/** Channel options that go with `channelCredentials` (the expected server name, if overridden). */
export function tlsChannelOptions(tls?: TlsFiles): Record<string, string> {
  return tls?.serverName ? { 'grpc.ssl_target_name_override': tls.serverName } : {};
}
