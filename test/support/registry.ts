// Groups for tests, each in a registry of its own. Group names are unique per registry and a Group
// created without `registry` joins the process-wide defaultRegistry, so tests that share one would
// collide on names and see each other's groups. testGroup gives every group its own registry in one
// call (galaxycache has no process-wide registry at all; we keep the default for library users).

import { Group, type GroupOptions, GroupRegistry } from '../../src/group.js';

/** A Group in a fresh GroupRegistry of its own: `new Group(opts)` without the registry bookkeeping. */
export function testGroup(opts: Omit<GroupOptions, 'registry'>): Group {
  return new Group({ ...opts, registry: new GroupRegistry() });
}
