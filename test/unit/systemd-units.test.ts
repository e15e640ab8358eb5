/**
 * The systemd units under deploy/systemd/ (issue 18): what they run and how they stop, read from
 * the files, and systemd's own check of them (systemd-analyze verify; install.sh installs systemd).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const unitDir = fileURLToPath(new URL('../../../deploy/systemd/', import.meta.url));
const units = ['prescient-agent.service', 'prescient-coordinator.service', 'prescient-stack.service'];

/** The unit's keys per section (last one wins, as systemd reads a single-valued key). */
function parseUnit(text: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  let section = '';
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const s = /^\[(.+)\]$/.exec(t);
    if (s) { section = s[1]; out[section] ??= {}; continue; }
    const eq = t.indexOf('=');
    out[section][t.slice(0, eq)] = t.slice(eq + 1);
  }
  return out;
}

test('systemd finds nothing wrong in any of the units', () => {
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...units.map((u) => unitDir + u)], { encoding: 'utf8' });
  assert.is(r.error, undefined, 'systemd-analyze runs (install.sh installs systemd)');
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stderr.trim(), '', 'no warnings');
});

test('the agent runs from its config file, stops by draining (SIGTERM, longer than the 60 s drain), restarts on failure, logs to the journal', () => {
  const u = parseUnit(readFileSync(unitDir + 'prescient-agent.service', 'utf8'));
  assert.match(u.Service.ExecStart, /^\/usr\/local\/bin\/prescient --state-dir \/var\/lib\/prescient agent --config \/etc\/prescient\/agent\.yaml$/);
  assert.is(u.Service.KillSignal, 'SIGTERM');
  assert.ok(Number(u.Service.TimeoutStopSec) > 60, 'systemd waits out the drain before it kills');
  assert.is(u.Service.Restart, 'on-failure');
  assert.is(u.Service.StandardOutput, 'journal');
  assert.ok(Number(u.Unit.StartLimitBurst) > 0, 'a crash loop is not retried forever');
  assert.is(u.Install.WantedBy, 'multi-user.target');
});

test('the coordinator runs from its config file and restarts on failure', () => {
  const u = parseUnit(readFileSync(unitDir + 'prescient-coordinator.service', 'utf8'));
  assert.match(u.Service.ExecStart, /coordinator --config \/etc\/prescient\/coordinator\.yaml$/);
  assert.is(u.Service.Restart, 'on-failure');
  assert.is(u.Service.StandardOutput, 'journal');
});

test('the stack unit brings up a durable stack on the configured address before the coordinator and agent, and takes it down on stop', () => {
  const u = parseUnit(readFileSync(unitDir + 'prescient-stack.service', 'utf8'));
  assert.match(u.Service.ExecStart, /stack up --durable --host \$\{PRESCIENT_STACK_HOST\}$/);
  assert.match(u.Service.ExecStop, /stack down$/);
  assert.equal([u.Service.Type, u.Service.RemainAfterExit], ['oneshot', 'yes'], 'the services it starts stay up after `stack up` returns');
  assert.match(u.Unit.Before, /prescient-coordinator\.service/);
});

test.run();
