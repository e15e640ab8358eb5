/**
 * Clean-up after agents a test killed: SIGKILL skips an agent's stop, which is what removes its
 * cgroup directories (`prescient-<node id>` in each hierarchy) and its qdiscs.
 */
import { once } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { removeNodeLeftovers } from '../../node-agent/enforce/index.js';

/**
 * Kills the agent processes still running, waits until each has exited, and removes what each
 * node id left on this host. Its ffmpeg dies with it (parent-death signal), which can take a
 * moment, so a cgroup still in use is tried again for a few seconds before it is reported.
 */
export async function removeKilledAgents(agents: ReadonlyMap<string, ChildProcess>): Promise<void> {
  await Promise.all([...agents.values()].map(async (p) => {
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = once(p, 'exit');
    p.kill('SIGKILL');
    await exited;
  }));
  for (const node of agents.keys()) {
    let left = await removeNodeLeftovers(node);
    for (let i = 0; left.length && i < 20; i++) {
      await sleep(250);
      left = await removeNodeLeftovers(node);
    }
    if (left.length) console.error(`agent ${node} left behind, still in use: ${left.join(', ')}`);
  }
}
