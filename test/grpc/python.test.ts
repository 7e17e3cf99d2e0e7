// Cross-language: a Python client with stubs generated from proto/*.proto (grpc_tools.protoc, into a
// temp dir) calls a running node. Needs Debian's python3-grpcio and python3-grpc-tools for
// /usr/bin/python3; skips, saying so, when they cannot be imported.

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { NotFoundError } from '../../src/errors.js';
import { Group, GroupRegistry } from '../../src/group.js';
import { createGrpcServer, PROTO_DIR, PROTO_FILES } from '../../src/grpc/index.js';

const PYTHON = '/usr/bin/python3';

function pythonMissing(): string | false {
  try {
    execFileSync(PYTHON, ['-c', 'import grpc, grpc_tools.protoc'], { stdio: 'pipe' });
    return false;
  } catch {
    return `${PYTHON} cannot import grpc and grpc_tools (apt-get install -y python3-grpcio python3-grpc-tools)`;
  }
}

test("Python clients generated from proto/*.proto and from groupcache's original proto2 contract get values from a node", {
  skip: pythonMissing(),
}, async () => {
  const stubs = mkdtempSync(join(tmpdir(), 'gossipcache-py-'));
  const registry = new GroupRegistry();
  const group = new Group({
    name: 'g',
    cacheBytes: 1 << 20,
    registry,
    getter: async (key) => {
      if (key === 'missing') throw new NotFoundError('no such row');
      if (key === 'ttl') return { value: 'soon gone', ttlMs: 30_000 };
      return `hi from node: ${key}`;
    },
  });
  const server = createGrpcServer({ registry });
  try {
    execFileSync(
      PYTHON,
      [
        '-m',
        'grpc_tools.protoc',
        '-I',
        PROTO_DIR,
        `--python_out=${stubs}`,
        `--grpc_python_out=${stubs}`,
        ...PROTO_FILES,
      ],
      { stdio: 'pipe' },
    );
    const port = await server.listen('127.0.0.1:0');
    const script = fileURLToPath(new URL('./python_client.py', import.meta.url));
    // Async: the node answers from this same process while Python runs.
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(PYTHON, [script, stubs, `127.0.0.1:${port}`], { timeout: 60_000 }, (err, out, errOut) =>
        err ? reject(new Error(`python client failed: ${err.message}\n${errOut}`)) : resolve(out),
      ),
    );
    const r = JSON.parse(stdout);
    assert.equal(r.value, 'hi from node: hello');
    assert.ok(r.minute_qps > 0, `minute_qps ${r.minute_qps}`);
    assert.equal(r.has_ttl, false);
    assert.ok(r.ttl_ms > 25_000 && r.ttl_ms <= 30_000, `ttl_ms ${r.ttl_ms}`);
    assert.equal(r.unknown_group, 'NOT_FOUND');
    assert.match(r.unknown_group_details, /"nope"/);
    assert.deepEqual(r.fetch['7'], { code: 0, value: 'hi from node: hello', message: '' });
    assert.equal(r.fetch['8'].code, 5);
    assert.match(r.fetch['8'].message, /no such row/);
    assert.equal(r.removed, true);
    assert.equal(group.server.getCached('hello'), undefined, 'Remove from Python dropped the key');

    // A client generated from groupcache's own proto2 contract (required fields, no ttl_ms).
    const original = join(stubs, 'original');
    mkdirSync(original);
    const originalDir = fileURLToPath(new URL('./original/', import.meta.url));
    execFileSync(
      PYTHON,
      [
        '-m',
        'grpc_tools.protoc',
        '-I',
        originalDir,
        `--python_out=${original}`,
        `--grpc_python_out=${original}`,
        'groupcache.proto',
      ],
      { stdio: 'pipe' },
    );
    const origScript = fileURLToPath(new URL('./python_original_client.py', import.meta.url));
    const o = JSON.parse(
      await new Promise<string>((resolve, reject) =>
        execFile(
          PYTHON,
          [origScript, original, `127.0.0.1:${port}`],
          { timeout: 60_000 },
          (err, out, errOut) =>
            err
              ? reject(new Error(`python (original proto) client failed: ${err.message}\n${errOut}`))
              : resolve(out),
        ),
      ),
    );
    assert.equal(o.value, 'hi from node: hello');
    assert.ok(o.minute_qps > 0, `minute_qps ${o.minute_qps}`);
    assert.equal(o.ttl_value, 'soon gone', 'a response carrying ttl_ms parses with the original contract');
    assert.equal(o.missing, 'NOT_FOUND');
  } finally {
    await server.close(0);
    rmSync(stubs, { recursive: true, force: true });
  }
});
