#!/usr/bin/env node
// The `gossipcache` binary: one cache node configured by environment variables or flags
// (`gossipcache --help` lists them). Bad configuration → one line on stderr naming the variable, exit 2.

import { readFileSync } from 'node:fs';
import { ConfigError, parseConfig, usage } from './node/config.js';

function main(): void {
  if (process.argv[2] === '--version' || process.argv[2] === '-v') {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    process.stdout.write(`gossipcache ${pkg.version}\n`);
    return;
  }
  let parsed: ReturnType<typeof parseConfig>;
  try {
    parsed = parseConfig(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`gossipcache: invalid configuration: ${err.message}\n`);
    process.exit(2);
  }
  if (parsed.help) {
    process.stdout.write(usage() + '\n');
    return;
  }
  const config = parsed.config;
  // Loaded after validation so `--help` and configuration errors answer at once.
  import('./node/main.js').then(
    ({ runNode }) => runNode(config),
    (err: unknown) => {
      process.stderr.write(`gossipcache: cannot load the node: ${(err as Error).stack ?? err}\n`);
      process.exit(1);
    },
  );
}

main();
