/**
 * A preload (`node --import`) that lists the modules a process loads in the file named by
 * PRESCIENT_MODULES_FILE, one URL or path a line: ES modules as the loader resolves them (the
 * hook in module-trace-hooks.ts, which runs on the loader's thread and appends as it goes), and
 * CommonJS modules from require's cache at exit (a package's own require() calls never reach
 * the hook). Tests read it to check what a command loads, never how long that took.
 */
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';

const file = process.env.PRESCIENT_MODULES_FILE;
if (file) {
  register(new URL('./module-trace-hooks.js', import.meta.url), { data: { file } });
  const cache = createRequire(import.meta.url).cache;
  process.on('exit', () => appendFileSync(file, Object.keys(cache).map((p) => `${p}\n`).join('')));
}
