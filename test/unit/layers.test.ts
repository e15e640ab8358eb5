/**
 * The layers point one way (shared ← models ← coordinator / node-agent; the CLI composes them;
 * the leader's core does no I/O; the client imports no more than the bus), as
 * `.dependency-cruiser.cjs` says: dependency-cruiser runs on the sources, and on a small tree
 * that breaks the rules, to show the check can fail.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = path.join(ROOT, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs');
const CONFIG = path.join(ROOT, '.dependency-cruiser.cjs');

interface Violation { from: string; to: string; rule: { name: string } }

function cruise(cwd: string, dirs: string[], tsConfig?: string): Promise<Violation[]> {
  const args = [BIN, '--config', CONFIG, '--output-type', 'json', ...(tsConfig ? ['--ts-config', tsConfig] : []), ...dirs];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { cwd, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) => {
      // It exits non-zero when it finds violations; the JSON says which.
      try {
        resolve((JSON.parse(stdout) as { summary: { violations: Violation[] } }).summary.violations);
      } catch {
        reject(new Error(`dependency-cruiser gave no JSON: ${err?.message ?? ''} ${stderr.slice(-2000)}`));
      }
    });
  });
}

test('no module imports against the layers', async () => {
  const v = await cruise(ROOT, ['shared', 'models', 'coordinator', 'node-agent', 'deploy']);
  assert.equal(v.map((x) => `${x.rule.name}: ${x.from} → ${x.to}`), []);
});

test('the check catches a shared module importing the coordinator, a core that reads files and a client importing the CLI', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'layers-'));
  try {
    for (const d of ['shared', 'coordinator/core', 'coordinator/leader', 'coordinator/cli', 'coordinator/client']) mkdirSync(path.join(dir, d), { recursive: true });
    writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022' } }));
    writeFileSync(path.join(dir, 'coordinator/leader/index.ts'), 'export const shell = 1;\n');
    writeFileSync(path.join(dir, 'shared/index.ts'), "import { shell } from '../coordinator/leader/index.js';\nexport const x = shell;\n");
    writeFileSync(path.join(dir, 'coordinator/core/index.ts'), "import { readFileSync } from 'node:fs';\nexport const y = readFileSync;\n");
    writeFileSync(path.join(dir, 'coordinator/cli/main.ts'), 'export const program = 1;\n');
    writeFileSync(path.join(dir, 'coordinator/client/index.ts'), "import { program } from '../cli/main.js';\nexport const z = program;\n");
    const v = await cruise(dir, ['shared', 'coordinator'], 'tsconfig.json');
    assert.equal(v.map((x) => x.rule.name).sort(), ['client-is-light', 'core-does-no-io', 'shared-is-the-base']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
