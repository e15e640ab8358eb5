/**
 * Several "hosts" on one machine: network namespaces joined by a bridge, each with its own IPv4
 * address (issue 18's multi-host test). Each namespace's loopback device is up (a host reaches
 * its own address through it) but has no 127.0.0.1: anything that still dials loopback fails,
 * so what works goes over the hosts' addresses. The bridge itself has an address in the root
 * namespace, where the test process runs, so the test reaches every host as another host would.
 */
import { spawnSync } from 'node:child_process';
import { spawnCli, type CoordinatorProcess } from './bench-cluster.js';

export interface Host { name: string; ns: string; address: string }
export interface Hosts { hosts: Host[]; bridgeAddress: string; remove(): void }

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.error?.message ?? r.stderr.trim()}`);
}

/** Why namespaces cannot be made here (not root, no `ip`, no bridge support), or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const probe = `pp${process.pid % 100_000}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.error) return `no \`ip\` command (${r.error.message}; install.sh installs iproute2)`;
  if (r.status !== 0) return `ip netns add fails here: ${r.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  const b = spawnSync('ip', ['link', 'add', `${probe}br`, 'type', 'bridge'], { encoding: 'utf8' });
  if (b.status !== 0) return `no bridge devices here: ${b.stderr.trim()}`;
  spawnSync('ip', ['link', 'del', `${probe}br`]);
  return undefined;
}

/** `names.length` hosts on 10.213.N.0/24 (N from the pid, so two runs at once do not meet). */
export function makeHosts(names: string[]): Hosts {
  const n = 20 + (process.pid % 200), tag = `pm${n}`, subnet = `10.213.${n}`;
  const bridge = `${tag}br`;
  const hosts = names.map((name, i) => ({ name, ns: `${tag}-${name}`, address: `${subnet}.${i + 1}` }));
  const remove = () => {
    for (const h of hosts) spawnSync('ip', ['netns', 'del', h.ns]);
    spawnSync('ip', ['link', 'del', bridge]);
  };
  remove(); // what a killed run left behind
  try {
    ip(['link', 'add', bridge, 'type', 'bridge']);
    ip(['addr', 'add', `${subnet}.254/24`, 'dev', bridge]);
    ip(['link', 'set', bridge, 'up']);
    for (const h of hosts) {
      ip(['netns', 'add', h.ns]);
      ip(['link', 'add', `${h.ns}h`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns]);
      ip(['link', 'set', `${h.ns}h`, 'master', bridge, 'up']);
      ip(['-n', h.ns, 'addr', 'add', `${h.address}/24`, 'dev', 'eth0']);
      ip(['-n', h.ns, 'link', 'set', 'eth0', 'up']);
      ip(['-n', h.ns, 'link', 'set', 'lo', 'up']);
      ip(['-n', h.ns, 'addr', 'del', '127.0.0.1/8', 'dev', 'lo']);
      spawnSync('ip', ['-n', h.ns, 'addr', 'del', '::1/128', 'dev', 'lo']);
    }
  } catch (e) {
    remove();
    throw e;
  }
  return { hosts, bridgeAddress: `${subnet}.254`, remove };
}

/** `prescient ARGS` run inside a host's namespace, as `prescient` would run, with `env` added (bench-cluster spawnCli). */
export function onHost(h: Host, args: string[], env: NodeJS.ProcessEnv = {}): CoordinatorProcess {
  return spawnCli(args, [], { wrap: ['ip', 'netns', 'exec', h.ns], env, label: h.name });
}

/** Runs `prescient ARGS` on a host to completion. */
export async function runOnHost(h: Host, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string }> {
  const p = onHost(h, args, env);
  const code = await new Promise<number | null>((r) => p.child.once('exit', (c) => r(c)));
  return { code, output: p.output() };
}
