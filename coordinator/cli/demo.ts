/**
 * `prescient demo`, the main job: a local cluster (one coordinator, several agents each granted
 * its own cores) runs a batch of real encodes submitted through NATS, then prints what the
 * model predicted beside what each encode actually used, and the rows read back from QuestDB.
 */
import { cliBus } from './member.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import YAML from 'yaml';
import {
  allowedInputRoots, allowedOutputRoots, disconnectMember, loadEndpoints, newJobId, retryUnavailable, validateEncodingSchema, type TaskEvent,
} from '../../shared/index.js';
import { stackDown, stackUp } from '../../deploy/stack/index.js';
import { startAgent, questdbQuery, RUNS_TABLE, type AgentHandle } from '../../node-agent/index.js';
import { allowedCores } from '../../node-agent/hardware.js';
import { connectBus, ensureStreams, followJob, publishSubmission } from '../bus/index.js';
import { attachProbes } from './probes.js';
import { startCoordinator } from '../coordinator.js';
import { formatEvent, table } from './format.js';

export const DEMO_JOBS = fileURLToPath(new URL('../../../deploy/demo/jobs.yaml', import.meta.url));

export interface DemoOptions { stateDir: string; agents: number; jobsFile?: string; keep: boolean; json: boolean }

const quiet = () => undefined;

export async function runDemo(o: DemoOptions): Promise<number> {
  const say = (m: string) => { if (!o.json) console.log(m); };
  say(`bringing up the local stack in ${o.stateDir} …`);
  await stackUp({ stateDir: o.stateDir, log: o.json ? quiet : (l) => console.error(`  ${l}`) });
  const endpoints = loadEndpoints(o.stateDir);
  const validation = { allowedInputRoots: allowedInputRoots(o.stateDir), allowedOutputRoots: allowedOutputRoots(o.stateDir) };
  const log = o.json ? quiet : (m: string) => console.error(`  · ${m}`);
  const coordinator = await startCoordinator({ id: 'demo-coordinator', endpoints, validation, log, modelDir: path.join(o.stateDir, 'models') });
  const cores = allowedCores();
  const count = Math.max(1, Math.min(o.agents, cores.length));
  const agents: AgentHandle[] = [];
  const { nc, me } = await cliBus(o.stateDir);
  try {
    for (let i = 0; i < count; i++) {
      const mine = cores.filter((_, j) => j % count === i);
      agents.push(await startAgent({
        nodeId: `node-${i + 1}`, endpoints, validation, log,
        grant: { cores: mine.join(','), memoryGb: Math.floor((os.totalmem() / 1024 ** 3 / count) * 10) / 10 },
        outputDir: path.join(o.stateDir, 'output', `node-${i + 1}`), spoolDir: path.join(o.stateDir, 'spool', `node-${i + 1}`),
      }));
    }
    say(`cluster: 1 coordinator, ${count} agent(s): ${agents.map((a) => `${a.nodeId} cores [${a.hardware.core_ids.join(',')}]`).join(', ')}`);
    await retryUnavailable(() => ensureStreams(nc));
    const js = nc.jetstream();
    const docs = YAML.parseAllDocuments(readFileSync(o.jobsFile ?? DEMO_JOBS, 'utf8')).map((d) => validateEncodingSchema(d.toJS(), validation));
    // Probed and test-encoded as `prescient submit` does, so each prediction reads what the input and its settings cost.
    await attachProbes(docs, { cacheFile: path.join(o.stateDir, 'probe-cache.json'), log, pilot: true });
    const ids: string[] = [];
    const started = Date.now();
    for (const schema of docs) {
      const id = newJobId();
      await publishSubmission(js, me.name, { job_id: id, submitted_at: Date.now(), schema });
      ids.push(id);
    }
    say(`submitted ${ids.length} jobs through NATS; following their events:`);
    const finals = await Promise.all(ids.map((id) => followJob(js, { owner: me.name, id }, (e) => say(`  ${formatEvent(e)}`), 15 * 60_000)));
    const makespan = (Date.now() - started) / 1000;
    const rows = await readBack(endpoints.questdb_http, ids);
    if (o.json) {
      console.log(JSON.stringify({ makespan_s: makespan, jobs: finals, questdb_rows: rows.length }, null, 2));
    } else {
      console.log(`\npredicted vs actual (memory reserved at the upper bound, cores at the expected use), ${ids.length} jobs in ${makespan.toFixed(1)} s:\n`);
      console.log(report(docs.map((d, i) => ({ schema: d, ev: finals[i] }))));
      console.log(`\n${boundSummary(finals)}`);
      console.log(`\nQuestDB ${RUNS_TABLE}: ${rows.length} of ${ids.length} runs read back over HTTP`);
    }
    return finals.every((f) => f?.state === 'succeeded') ? 0 : 1;
  } finally {
    await disconnectMember(nc);
    for (const a of agents) await a.stop();
    await coordinator.stop();
    if (!o.keep) await stackDown({ stateDir: o.stateDir });
    else say(`stack left running (prescient stack down stops it)`);
  }
}

/** Waits briefly for QuestDB's WAL to apply, then reads the demo's rows. */
async function readBack(http: string, ids: string[]): Promise<Record<string, unknown>[]> {
  const sql = `SELECT job_id FROM ${RUNS_TABLE} WHERE job_id IN (${ids.map((i) => `'${i}'`).join(',')})`;
  let rows: Record<string, unknown>[] = [];
  for (let i = 0; i < 40 && rows.length < ids.length; i++) {
    rows = await questdbQuery(http, sql).catch(() => []);
    if (rows.length < ids.length) await new Promise((r) => setTimeout(r, 250));
  }
  return rows;
}

function report(items: Array<{ schema: ReturnType<typeof validateEncodingSchema>; ev: TaskEvent | undefined }>): string {
  const f = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
  const rows = items.map(({ schema: s, ev }) => {
    const p = ev?.predicted, a = ev?.result?.actual, res = s.output.resolution ?? s.input.resolution;
    return [
      ev?.job_id ?? '?', `${s.output.encoder} ${s.output.preset}`, res ? `${res.width}x${res.height}` : '-', ev?.state ?? 'unknown', ev?.node_id ?? '-',
      String(ev?.allocation?.core_ids.length ?? '-'),
      `${f(p?.expected.cpu_cores)} / ${f(a?.cpu_cores)}`,
      `${f(p?.upper.memory_gb, 3)} / ${f(a?.memory_gb, 3)}`,
      `${f(p?.expected.duration_s, 1)} / ${f(a?.duration_s, 1)}`,
      `${f(p?.expected.bandwidth_mbps, 1)} / ${f(a?.bandwidth_mbps, 1)}`,
      `${f(ev?.result?.psnr_db, 1)} / ${f(ev?.result?.ssim, 3)}`,
    ];
  });
  return table(['job', 'encoder preset', 'output', 'state', 'node', 'cores', 'cpu pred/act', 'mem GB resv/act', 'time s pred/act', 'Mbps pred/act', 'PSNR/SSIM'], rows);
}

/** How often the actual stayed within the upper bound the reservation was made at, per target. */
function boundSummary(finals: Array<TaskEvent | undefined>): string {
  const done = finals.filter((e): e is TaskEvent => !!e?.predicted && !!e.result);
  if (!done.length) return 'no finished jobs to compare with their bounds';
  const p = done[0].predicted!;
  const within = (k: 'cpu_cores' | 'memory_gb' | 'duration_s' | 'bandwidth_mbps') =>
    `${k} ${done.filter((e) => e.result!.actual[k] <= e.predicted!.upper[k]).length}/${done.length}`;
  return `model ${p.model_version}, bounds at ${p.coverage !== undefined ? `${(100 * p.coverage).toFixed(0)}%` : '?'} coverage; actual within the bound: `
    + ['cpu_cores', 'memory_gb', 'duration_s', 'bandwidth_mbps'].map((k) => within(k as never)).join(', ');
}
