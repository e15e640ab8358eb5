/**
 * The memory allocator the CLI runs on. Its shebang preloads jemalloc (Debian's libjemalloc2,
 * which deploy/install.sh installs) with freed pages handed back to the system within a second:
 * glibc's malloc kept what a burst of large messages had left in its brk heap (about 15 MB after
 * 1,000 poison submissions, RSS after ÷ before 1.105–1.25, however MALLOC_MMAP_THRESHOLD_ and
 * MALLOC_TRIM_THRESHOLD_ were set), and with jemalloc the leader's RSS comes back to within 10 %
 * (`npm run bench -- poison`: 1.005–1.097 over ten runs; with leader/reclaim.ts compacting V8's
 * old space once quiet, 0.991–1.092 over thirteen). Where the library is missing, ld.so says so once on stderr and
 * glibc's malloc runs with the shebang's settings for it.
 */

/** What the shebang sets for the CLI's own process. */
export const ALLOCATOR_ENV: Readonly<Record<string, string>> = {
  LD_PRELOAD: 'libjemalloc.so.2',
  MALLOC_CONF: 'background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0',
};

/**
 * `env` without what the shebang set for the CLI itself, so the processes it starts (ffmpeg
 * above all, whose memory the agent measures and the models learn) run on their own allocator.
 * A value the user set differently is theirs and stays.
 */
export function withoutCliAllocator(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  for (const [k, v] of Object.entries(ALLOCATOR_ENV)) if (env[k] === v) delete env[k];
  return env;
}

/** Which allocator a process runs on, from its memory map (`/proc/PID/maps` text). */
export function allocatorOf(maps: string): 'jemalloc' | 'glibc' {
  return /\/libjemalloc\.so/.test(maps) ? 'jemalloc' : 'glibc';
}
