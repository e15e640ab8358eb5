/**
 * The Python the benchmarks' peers run in: one venv, shared by every bench that needs Python
 * (accuracy's LightGBM and scikit-learn, packing's Ray), made once and kept while its packages
 * import. Only what is missing is installed, from PyPI through pip; where that cannot be done
 * the bench is told why and goes on without that peer.
 *
 *   PRESCIENT_BENCH_VENV=DIR   the venv (default ~/.cache/prescient/bench-venv)
 */
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';

/** A package as pip installs it and as Python imports it (`scikit-learn` is imported as `sklearn`). */
export interface PythonPackage {
  pip: string;
  module: string;
}

/** The venv's python, or why there is none. */
export type BenchPython = { python: string; venv: string } | { skipped: string };

/** Runs a command without a shell; resolves (never rejects) with whether it succeeded and its output, or why it failed. */
export function runCommand(cmd: string, args: readonly string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<{ ok: boolean; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, env }, (err, stdout, stderr) => {
      const out = `${stdout}${stderr}`.trim();
      resolve({ ok: !err, out: err ? `${err.message.split('\n')[0]}${out ? `: ${out.split('\n').slice(-3).join(' ')}` : ''}` : out });
    });
  });
}

export function benchVenvDir(): string {
  return process.env.PRESCIENT_BENCH_VENV || path.join(os.homedir(), '.cache/prescient/bench-venv');
}

/** A name alone is both what pip installs and what Python imports (`-` read as `_`). */
const asPackage = (p: string | PythonPackage): PythonPackage => (typeof p === 'string' ? { pip: p, module: p.replace(/-/g, '_') } : p);

/** Prints, as JSON, each module among argv that does not import, with why. */
const MISSING = 'import importlib, json, sys\nbad = {}\nfor m in sys.argv[1:]:\n    try:\n        importlib.import_module(m)\n    except Exception as e:\n        bad[m] = f"{type(e).__name__}: {e}"\nprint(json.dumps(bad))';

/** The packages that do not import in `python`, with why (all of them when it does not run). */
async function missing(python: string, pkgs: readonly PythonPackage[]): Promise<{ pkg: PythonPackage; why: string }[]> {
  const r = await runCommand(python, ['-c', MISSING, ...pkgs.map((p) => p.module)], 120_000);
  let bad: Record<string, string> | undefined;
  try {
    if (r.ok) bad = JSON.parse(r.out.split('\n').at(-1)!) as Record<string, string>;
  } catch { /* not our JSON: as if nothing imported */ }
  return pkgs.flatMap((pkg) => (!bad ? [{ pkg, why: r.out }] : bad[pkg.module] !== undefined ? [{ pkg, why: bad[pkg.module] }] : []));
}

/**
 * The bench venv with `packages` importable: made when it is not there, and given whichever of
 * them do not import yet (`pip install`, up to 10 minutes). Resolves to its python, or to why not.
 */
export async function benchPython(packages: readonly (string | PythonPackage)[], log: (m: string) => void = () => undefined): Promise<BenchPython> {
  const venv = benchVenvDir();
  const python = path.join(venv, 'bin/python');
  const pkgs = packages.map(asPackage);
  const need = (await missing(python, pkgs)).map((m) => m.pkg);
  if (!need.length) return { python, venv };
  const names = need.map((p) => p.pip).join(' ');
  const base = await runCommand('python3', ['--version'], 10_000);
  if (!base.ok) return { skipped: `python3 is not available (${base.out})` };
  if (!(await runCommand(python, ['--version'], 10_000)).ok) {
    const made = await runCommand('python3', ['-m', 'venv', venv], 120_000);
    if (!made.ok) return { skipped: `python3 -m venv ${venv} failed (${made.out})` };
  }
  log(`installing ${names} into ${venv}`);
  const pip = await runCommand(python, ['-m', 'pip', 'install', '--quiet', ...need.map((p) => p.pip)], 600_000);
  if (!pip.ok) return { skipped: `pip install ${names} failed (${pip.out})` };
  const still = await missing(python, pkgs);
  return still.length ? { skipped: `after installing, ${still.map((m) => `${m.pkg.module} does not import (${m.why})`).join('; ')}` } : { python, venv };
}
