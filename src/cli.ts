#!/usr/bin/env node
// The `gossipcache` binary: one cache node configured by environment variables or flags
// (`gossipcache --help` lists them). Bad configuration → one line on stderr naming the variable, exit 2.

import { ConfigError, parseConfig, usage } from './node/config.js';
import { VERSION } from './version.js';

function main(): void {
  if (process.argv[2] === '--version' || process.argv[2] === '-v') {
    process.stdout.write(`gossipcache ${VERSION}\n`);
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
