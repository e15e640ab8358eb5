// Runs every compiled uvu test file in its own process and sums uvu's counts into the one line
// CI reads: "N passed, N failed". A file that crashes before its summary counts as one failure.
import { spawn } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import path from 'node:path';

const suites = process.argv.slice(2).length ? process.argv.slice(2) : ['unit', 'integration', 'security'];
const files = suites.flatMap((s) => {
  const dir = path.join('dist', 'test', s);
  // Only files whose source still exists: a test deleted from test/ leaves its build behind in dist/.
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.test.js') && existsSync(path.join('test', s, f.replace(/\.js$/, '.ts')))).sort().map((f) => path.join(dir, f)) : [];
});

let passed = 0, failed = 0, skipped = 0;
const failures = [];
for (const file of files) {
  const started = Date.now();
  const out = await new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' } });
    let text = '';
    child.stdout.on('data', (d) => { text += d; process.stdout.write(d); });
    child.stderr.on('data', (d) => { text += d; process.stderr.write(d); });
    // A hung file must not hang CI: ten minutes per file at most.
    const timer = setTimeout(() => { text += `\n${file}: killed after 600 s\n`; child.kill('SIGKILL'); }, 600_000);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, text }); });
  });
  const total = /Total:\s+(\d+)/.exec(out.text), ok = /Passed:\s+(\d+)/.exec(out.text);
  // A test that cannot run on this host is uvu's test.skip, its reason printed by the file.
  skipped += Number(/Skipped:\s+(\d+)/.exec(out.text)?.[1] ?? 0);
  if (total && ok) {
    passed += Number(ok[1]);
    failed += Number(total[1]) - Number(ok[1]);
    if (Number(total[1]) !== Number(ok[1])) failures.push(file);
  } else {
    failed += 1;
    failures.push(`${file} (no summary, exit ${out.code})`);
  }
  if (out.code !== 0 && total && ok && total[1] === ok[1]) { failed += 1; failures.push(`${file} (exit ${out.code})`); }
  console.log(`── ${file}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
if (failures.length) console.log(`\nfailing files:\n  ${failures.join('\n  ')}`);
if (skipped) console.log(`\n${skipped} skipped on this host (each file printed why)`);
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
