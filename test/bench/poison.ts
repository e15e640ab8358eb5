/**
 * Poison submissions (issue 17): 1,000 hostile messages published straight onto the jobs
 * subject, then one valid job. Before, 1,000 of them stopped admission for more than 60 s (each
 * redelivered without end), the leader sat at 93 % of a core and its RSS grew to 511 MB.
 *
 * The poison, a third of each: no valid job id and a schema nested 5,000 levels deep (both set
 * aside as dead letters, the deep one without being parsed), and a long value the refusal would
 * once have repeated: 20 KB (refused with a record that keeps 80 characters of it), or one in ten
 * of them 600 KB (over the largest submission read: a dead letter, unparsed). Measured: how long the leader takes to clear them, how soon after that the valid job
 * is placed (target: within 1 s), and the leader's RSS before and after (target: back within
 * 10 %; read 2 s after the valid job is placed, with no forced GC).
 *
 * The leader runs as its own process (its RSS is its own); one stand-in node (the real
 * Register RPC and Agent service, bench-cluster AcceptingFleet) takes the valid job.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { ALL_JOB_EVENTS, JOBS_STREAM, newJobId, submitSubject, pkiDirOf, type TaskEvent } from '../../shared/index.js';
import { jsonCodec, listDeadLetters, publishSubmission } from '../../coordinator/bus/index.js';
import { TEST_OWNER, smallJob, startStack } from '../helpers/cluster.js';
import { AcceptingFleet, round, spawnCoordinator, type CoordinatorProcess } from '../helpers/bench-cluster.js';
import { allocatorOf } from '../../coordinator/cli/allocator.js';

const POISON = 1000;
const WARM_UP = 50;

/** Resident MB by kind of region (/proc/PID/smaps): glibc's brk heap, other anonymous memory (V8's heap, mmapped buffers), and files. */
function rssByRegion(pid: number): { brk: number; anon: number; file: number } {
  const out = { brk: 0, anon: 0, file: 0 };
  let kind: keyof typeof out = 'anon';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) { const name = head[1]; kind = name === '[heap]' ? 'brk' : name === '' || name.startsWith('[') ? 'anon' : 'file'; continue; }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) out[kind] += Number(rss[1]) / 1024;
  }
  return out;
}
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

export async function benchPoison(): Promise<Record<string, number | string>> {
  const s = await startStack('poison-bench');
  let leader: CoordinatorProcess | undefined;
  let fleet: AcceptingFleet | undefined;
  const out: Record<string, number | string> = {};
  try {
    leader = await spawnCoordinator(s, 'poison-leader');
    const pid = leader.pid!;
    fleet = await AcceptingFleet.start({ consulHttp: s.endpoints.consul_http, pkiDir: pkiDirOf(s.endpoints), nodes: 1, coresPerNode: 64, memoryGbPerNode: 256, bandwidthMbpsPerNode: 100_000 });
    const placed = new Map<string, number>(), rejected = new Map<string, number>();
    const sub = s.nc.subscribe(ALL_JOB_EVENTS, {
      callback: (_e, m) => {
        const ev = jsonCodec.decode(m.data) as TaskEvent;
        if (ev.state === 'placed') placed.set(ev.job_id, Date.now());
        if (ev.state === 'rejected') rejected.set(ev.job_id, Date.now());
      },
    });
    const js = s.nc.jetstream();
    const until = async (what: string, ok: () => boolean | Promise<boolean>, ms = 120_000) => {
      const end = Date.now() + ms;
      while (!(await ok())) { if (Date.now() > end) throw new Error(`timed out waiting for ${what}`); await sleep(10); }
      return Date.now();
    };

    // Warm-up: the leader's steady RSS with jobs flowing.
    const warm = Array.from({ length: WARM_UP }, () => newJobId());
    for (const id of warm) await publishSubmission(js, TEST_OWNER, { job_id: id, submitted_at: Date.now(), schema: smallJob() });
    await until('the warm-up jobs to be placed', () => warm.every((id) => placed.has(id)));
    await sleep(2000);
    const rssBefore = rssMb(pid);
    const regionsBefore = rssByRegion(pid);

    const enc = new TextEncoder();
    let deadSoFar = 0;
    /** One round: the poison, then a valid job; what it took to clear them, and the RSS after. */
    const poisonRound = async () => {
      const bigIds: string[] = [];
      const started = Date.now();
      for (let i = 0; i < POISON; i++) {
        const kind = i % 3;
        let text: string;
        if (kind === 0) text = JSON.stringify({ job_id: `../poison/${i}`, submitted_at: 0, schema: smallJob() });
        else if (kind === 1) text = `{"job_id":"${newJobId()}","submitted_at":0,"schema":{"input":${'['.repeat(5000)}${']'.repeat(5000)}}}`;
        else if (i % 30 === 2) text = JSON.stringify({ job_id: newJobId(), submitted_at: 0, schema: smallJob({ output: { codec: 'h264', preset: 'x'.repeat(600_000) } }) });
        else { const id = newJobId(); bigIds.push(id); text = JSON.stringify({ job_id: id, submitted_at: 0, schema: smallJob({ output: { codec: 'h264', preset: 'x'.repeat(20_000) } }) }); }
        await js.publish(submitSubject(TEST_OWNER), enc.encode(text));
      }
      const published = Date.now();
      const valid = newJobId();
      await publishSubmission(js, TEST_OWNER, { job_id: valid, submitted_at: Date.now(), schema: smallJob() });
      const dead = POISON - bigIds.length; // all but the refusals
      deadSoFar += dead;
      const refusedAll = await until('every refusal recorded', () => bigIds.every((id) => rejected.has(id)));
      const deadAll = await until('every dead letter stored', async () => (await listDeadLetters(s.nc, deadSoFar + 10)).length >= deadSoFar, 120_000);
      const cleared = Math.max(refusedAll, deadAll);
      const validPlaced = await until('the valid job to be placed', () => placed.has(valid));
      await until('the jobs stream to empty', async () => (await (await s.nc.jetstreamManager()).streams.info(JOBS_STREAM)).state.messages === 0, 30_000);
      await sleep(2000);
      return { started, published, cleared, refused: bigIds.length, dead, valid: placed.get(valid)!, validPlaced, rss: rssMb(pid), regions: rssByRegion(pid) };
    };
    const first = await poisonRound();
    // A second round: what stays after the first is capacity the process keeps, unless it grows again.
    const second = await poisonRound();
    sub.unsubscribe();

    out['leader allocator (the CLI\'s shebang preloads jemalloc where libjemalloc2 is installed)'] = allocatorOf(readFileSync(`/proc/${pid}/maps`, 'utf8'));
    out['poison published (ms)'] = first.published - first.started;
    out['poison cleared after the first was published (ms)'] = first.cleared - first.started;
    out['refused with a record / set aside as dead letters'] = `${first.refused} / ${first.dead}`;
    // Negative: the valid job was placed before the last dead letter was stored (it came in the same batch).
    out['valid job placed after the poison cleared (ms; target ≤ 1,000), rounds 1 / 2'] = `${first.valid - first.cleared} / ${second.valid - second.cleared}`;
    out['valid job placed after it was published (ms)'] = first.validPlaced - first.published;
    out['leader RSS before / after round 1 / after round 2 (MB)'] = `${round(rssBefore, 1)} / ${round(first.rss, 1)} / ${round(second.rss, 1)}`;
    out['leader RSS after ÷ before (target ≤ 1.10)'] = round(first.rss / rssBefore, 3);
    out['leader RSS after round 2 ÷ after round 1 (growth)'] = round(second.rss / first.rss, 3);
    const grew = (k: keyof typeof regionsBefore) => round(first.regions[k] - regionsBefore[k], 1);
    out['of which grew in round 1: malloc brk heap / other anonymous (V8 heap, mmapped buffers) / files (MB)'] = `${grew('brk')} / ${grew('anon')} / ${grew('file')}`;
  } finally {
    await fleet?.stop().catch(() => undefined);
    await leader?.stop().catch(() => undefined);
    await s.down();
  }
  return out;
}
