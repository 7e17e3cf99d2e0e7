// `host:port`, the one grammar for every address gossipcache reads: bind addresses (HTTP, gRPC, gossip,
// memcached), seeds, advertised addresses, and peers' addresses gossip hands us.
//
//   host    a DNS name, an IPv4 address, or an IPv6 address — in brackets when a port follows
//           (`[fd00::1]:7946`); bare (`fd00::1`) only without a port, where every colon is the address's.
//   port    0-65535. Optional when the caller has a default (seeds: the gossip port), else required.
//
// DNS names: labels of letters, digits, `-` and `_`, up to 63 bytes each and 253 in all, an optional
// trailing dot. `_` is accepted although RFC 952 host names exclude it: resolvers look such names up
// (getaddrinfo does), Docker Compose names containers `project_service_1` and DNS-SD/SRV names start
// with `_`, and refusing a name that resolves would only confuse the operator who typed it.

import { isIP } from 'node:net';

/** A parsed address. `host` is a name, an IPv4 address or an IPv6 address (without brackets). */
export interface HostPort {
  host: string;
  port: number;
}

export interface ParseHostPortOptions {
  /** Port when the input has none. Absent: a port is required (`host:port`). */
  defaultPort?: number;
  /** Host when the input is `:port` (a bind address on every interface, e.g. '0.0.0.0'). Absent: required. */
  anyHost?: string;
}

/** What parseHostPort throws: the message names the input, the reason and the expected form. */
export class AddressError extends Error {
  constructor(
    readonly input: string,
    /** What is wrong, e.g. 'missing port'. */
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'AddressError';
  }
}

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?$/;

/** A DNS name or an IP address (IPv6 without brackets): what may stand before `:port`. */
export function isHost(host: string): boolean {
  return isIP(host) !== 0 || HOSTNAME.test(host);
}

/**
 * Parses `host:port`, `[v6]:port`, and — with `defaultPort` — `host`, `[v6]` or a bare IPv6 address;
 * with `anyHost`, `:port`. Surrounding whitespace is ignored. Throws an AddressError naming the input,
 * what is wrong and the expected form.
 */
export function parseHostPort(input: string, opts: ParseHostPortOptions = {}): HostPort {
  const { defaultPort, anyHost } = opts;
  const s = input.trim();
  const form = defaultPort === undefined ? 'host:port' : 'host[:port]';
  const example =
    anyHost === undefined ? 'cache-1:7946 or [fd00::1]:7946' : '0.0.0.0:8080, :8080 or [::1]:8080';
  const bad = (why: string) =>
    new AddressError(input, why, `invalid address "${input}": ${why} (expected ${form}, e.g. ${example})`);
  if (s === '') throw bad('empty');
  let host: string;
  let portStr: string | undefined;
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0) throw bad('missing "]" after an IPv6 address');
    host = s.slice(1, end);
    const rest = s.slice(end + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) throw bad('unexpected text after "]"');
      portStr = rest.slice(1);
    }
    if (isIP(host) !== 6) throw bad('not an IPv6 address inside brackets');
  } else if (isIP(s) === 6) {
    host = s; // bare IPv6: every colon belongs to the address
  } else {
    const i = s.lastIndexOf(':');
    if (i >= 0 && s.indexOf(':') !== i) throw bad('IPv6 addresses with a port need brackets');
    host = i >= 0 ? s.slice(0, i) : s;
    portStr = i >= 0 ? s.slice(i + 1) : undefined;
    if (host === '') {
      if (anyHost === undefined || portStr === undefined) throw bad('missing host');
      host = anyHost;
    } else if (!isHost(host)) {
      throw bad('not a valid host name or IP address');
    }
  }
  let port: number;
  if (portStr === undefined) {
    if (defaultPort === undefined) throw bad('missing port');
    port = defaultPort;
  } else {
    if (!/^\d{1,5}$/.test(portStr)) throw bad(`port "${portStr}" is not a number`);
    port = Number(portStr);
    if (port > 65535) throw bad(`port ${port} is out of range 0-65535`);
  }
  return { host, port };
}

/** Formats as `host:port`, bracketing IPv6 hosts: an address to dial or to show. */
export function formatHostPort({ host, port }: HostPort): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
