/**
 * The CLI runs on jemalloc where it is installed (its shebang preloads it), and what it starts
 * (ffmpeg, the stack's services) does not inherit it: the agent measures ffmpeg's memory as
 * ffmpeg allocates it on its own.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ALLOCATOR_ENV, allocatorOf, withoutCliAllocator } from '../../coordinator/cli/allocator.js';
import { CLI_ENV } from '../helpers/bench-cluster.js';

const CLI = fileURLToPath(new URL('../../coordinator/cli/main.js', import.meta.url));
const JEMALLOC = ['/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2'].find((p) => existsSync(p));

test('the shebang sets exactly the allocator settings the CLI strips again for its children', () => {
  for (const [k, v] of Object.entries(ALLOCATOR_ENV)) assert.is(CLI_ENV[k], v, k);
});

test('the shebang\'s allocator settings are dropped for child processes, and a user\'s own are kept', () => {
  const env = { ...ALLOCATOR_ENV, PATH: '/bin' };
  assert.equal(withoutCliAllocator(env), { PATH: '/bin' });
  const mine = { LD_PRELOAD: '/opt/lib/libtrace.so', MALLOC_CONF: 'narenas:1' };
  assert.equal(withoutCliAllocator({ ...mine }), mine);
});

test('a memory map tells jemalloc from glibc', () => {
  assert.is(allocatorOf('7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2\n'), 'jemalloc');
  assert.is(allocatorOf('7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n'), 'glibc');
});

const maybe = JEMALLOC ? test : test.skip;
maybe(`started as its shebang starts it, the CLI runs on jemalloc and a process it starts does not${JEMALLOC ? '' : ' (skipped: libjemalloc2 is not installed here)'}`, () => {
  // A node with the shebang's environment loads the CLI, then reports its own memory map, what is
  // left of LD_PRELOAD, and the memory map of a child it spawns the way the agent spawns ffmpeg.
  const script = `
    import { readFileSync } from 'node:fs';
    import { spawnSync } from 'node:child_process';
    await import(${JSON.stringify(CLI)});
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(require("fs").readFileSync("/proc/self/maps", "utf8"))'], { encoding: 'utf8' }).stdout;
    process.stdout.write(JSON.stringify({ self: readFileSync('/proc/self/maps', 'utf8'), preload: process.env.LD_PRELOAD ?? null, child }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...ALLOCATOR_ENV }, encoding: 'utf8', timeout: 60_000 });
  assert.is(r.status, 0, r.stderr);
  const o = JSON.parse(r.stdout) as { self: string; preload: string | null; child: string };
  assert.is(allocatorOf(o.self), 'jemalloc', 'the CLI process');
  assert.is(o.preload, null, 'LD_PRELOAD is left for children');
  assert.ok(o.child.length > 0);
  assert.is(allocatorOf(o.child), 'glibc', 'a process the CLI starts');
});

test.run();
