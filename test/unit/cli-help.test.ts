/**
 * Every help page of the CLI has examples, each naming a command and flags that exist; the help
 * lists only flags a command honours; `--version` works; and with --json a command that fails
 * prints one JSON object on stdout (issue 20). The last tests run the CLI as a process against a
 * state directory with no stack, so they fail the way a first-time user's would.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { program } from '../../coordinator/cli/main.js';

const CLI = fileURLToPath(new URL('../../coordinator/cli/main.js', import.meta.url));
const VERSION = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Every command below `cmd`, groups included, with its full name. */
function commands(cmd: Command, prefix = ''): Array<{ name: string; cmd: Command }> {
  return cmd.commands.flatMap((c) => [{ name: `${prefix}${c.name()}`, cmd: c }, ...commands(c, `${prefix}${c.name()} `)]);
}

/** A command's help exactly as `--help` prints it, texts added after it included. */
function help(cmd: Command): string {
  let out = '';
  cmd.configureOutput({ writeOut: (s) => { out += s; }, writeErr: (s) => { out += s; } });
  cmd.outputHelp();
  return out;
}

/** The example lines of a help page: each `prescient …` line after "Examples:". */
function exampleLines(text: string): string[] {
  const at = text.indexOf('\nExamples');
  return at < 0 ? [] : text.slice(at).split('\n').map((l) => l.trim()).filter((l) => l.startsWith('prescient '));
}

/** The command an example runs and the flags it gives it (before any pipe, `&&` or comment). */
function resolveExample(line: string): { cmd: Command; flags: string[] } {
  const words = line.split(/\s+(?:\||&&|#).*$/)[0].split(/\s+/).slice(1);
  let cmd: Command = program;
  const flags: string[] = [];
  let sinceCommand = 0;
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (w === '--state-dir') { i++; continue; }
    if (w.startsWith('-')) { flags.push(w.split('=')[0]); sinceCommand++; continue; }
    const sub = sinceCommand === 0 ? cmd.commands.find((c) => c.name() === w) : undefined;
    if (sub) cmd = sub; else sinceCommand++;
  }
  return { cmd, flags };
}

const optionsOf = (cmd: Command): string[] => {
  const own = cmd.options.flatMap((o) => [o.long, o.short].filter((x): x is string => !!x));
  return cmd.parent ? [...own, ...optionsOf(cmd.parent)] : [...own, '--version', '-V'];
};

test('every command\'s help, groups and the top level included, ends with examples', () => {
  const all = [{ name: '(top level)', cmd: program }, ...commands(program)];
  assert.ok(all.length > 35, `found ${all.length} commands`);
  const without = all.filter((c) => exampleLines(help(c.cmd)).length === 0).map((c) => c.name);
  assert.equal(without, []);
});

test('each example runs a command that exists with flags that command takes', () => {
  const wrong: string[] = [];
  for (const { cmd } of [{ cmd: program }, ...commands(program)]) {
    for (const line of exampleLines(help(cmd))) {
      const { cmd: target, flags } = resolveExample(line);
      // `--version --json` is read before commander: the one pair of flags no command defines.
      const known = flags.includes('--version') ? [...optionsOf(target), '--json'] : optionsOf(target);
      for (const f of flags) if (!known.includes(f)) wrong.push(`${line}: ${f} is not a flag of ${target.name()}`);
    }
  }
  assert.equal(wrong, []);
});

test('calibrate lists no enforcement flag it would ignore, and model export no log flags', () => {
  const calibrate = help(program.commands.find((c) => c.name() === 'calibrate')!);
  for (const f of ['--accounted-only', '--shape-interfaces']) assert.not.ok(calibrate.includes(f), `calibrate lists ${f}`);
  for (const f of ['--output-dir', '--config', '--cores']) assert.ok(calibrate.includes(f), `calibrate lists ${f}`);
  const exp = program.commands.find((c) => c.name() === 'model')!.commands.find((c) => c.name() === 'export')!;
  for (const f of ['--csv', '--mapping', '--encoding']) {
    assert.not.ok(exp.options.some((o) => o.long === f), `model export takes ${f}`);
    assert.not.match(help(exp), new RegExp(`^\\s+${f} `, 'm'), `model export's help lists ${f}`);
  }
  const agent = help(program.commands.find((c) => c.name() === 'agent')!);
  for (const f of ['--accounted-only', '--shape-interfaces', '--output-dir']) assert.ok(agent.includes(f), `agent lists ${f}`);
});

/** Runs `prescient ARGS` against a state directory with no stack. */
function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'prescient-cli-help-'));
  try {
    writeFileSync(path.join(dir, 'job.yaml'), 'input: { synthetic: { source: testsrc2 }, resolution: 320x240, fps: 25, duration_s: 1 }\noutput: { codec: divx, rate_control: { mode: crf, crf: 28 } }\n');
    const { PRESCIENT_NATS_URL: _, ...env } = process.env;
    const r = spawnSync(process.execPath, [CLI, '--state-dir', dir, ...args.map((a) => a.replace('JOB', path.join(dir, 'job.yaml')))], { env, encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('prescient --version prints package.json\'s version, and --json as an object', () => {
  const text = run(['--version']);
  assert.is(text.status, 0, text.stderr);
  assert.is(text.stdout.trim(), `prescient ${VERSION}`);
  const json = run(['--version', '--json']);
  assert.is(json.status, 0, json.stderr);
  assert.equal(JSON.parse(json.stdout), { name: 'prescient', version: VERSION, node: process.version });
});

test('with --json a failing command prints one JSON error object on stdout and exits non-zero: no stack, a bad flag, a bad value, an invalid job', () => {
  const noStack = run(['status', 'j-none', '--json']);
  assert.is(noStack.status, 1);
  assert.match(JSON.parse(noStack.stdout).error.message, /no running stack/);
  const unknown = run(['jobs', '--sate', 'queued', '--json']);
  assert.is(unknown.status, 1);
  assert.equal(JSON.parse(unknown.stdout).error.field, '--sate');
  assert.is(unknown.stderr, '', 'nothing but the JSON');
  const badState = run(['jobs', '--state', 'finished', '--json']);
  assert.is(badState.status, 1);
  assert.is(JSON.parse(badState.stdout).error.field, '--state');
  const badId = run(['cancel', 'not a job id', '--json']);
  assert.is(JSON.parse(badId.stdout).error.field, '<job-id>');
  const invalid = run(['submit', 'JOB', '--json', '--no-probe']);
  assert.is(invalid.status, 2);
  assert.equal(JSON.parse(invalid.stdout).error.issues.map((i: { field: string }) => i.field), ['output.codec']);
});

test('without --json the same failures are one line of prose on stderr and nothing on stdout', () => {
  const r = run(['jobs', '--state', 'finished']);
  assert.is(r.status, 1);
  assert.is(r.stdout, '');
  assert.match(r.stderr, /^--state: "finished" is not a job state/);
});

test.run();
