// This package's version, read once from package.json: what `gossipcache --version` prints, what a node
// advertises in its membership metadata and what the memcached front's `version` answers.

import { readFileSync } from 'node:fs';

/** package.json's `version`; '0.0.0' when it cannot be read (a bundle without it). */
export const VERSION = readVersion();

function readVersion(): string {
  try {
    // src/ and dist/ are both one level below the package root.
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}
