/**
 * One prediction per job, on the hardware class it is placed on: on a fleet of two CPU classes
 * the leader's core predicts a job for both classes in one batch, sizes and places it for each,
 * takes the class where it ends soonest, reserves memory at that class's bound, and hands the
 * agent that same prediction.
 *
 * The predictor here is a test double (labelled so): a model whose figures differ by class on
 * purpose, so that which prediction sized a reservation shows in the reservation itself.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LeaderCore, type Effect } from '../../coordinator/core/index.js';
import type { PredictContext, ResourcePredictor } from '../../models/index.js';
import type { EncodingSchema, NodeCapacity, Prediction, ResourceUsage } from '../../shared/index.js';

/** Seconds on one core, and the memory bound, per class (no class: the admission prediction). */
const CLASS = { 'Fast CPU': { seconds: 2, memory: 0.6 }, 'Slow CPU': { seconds: 6, memory: 0.3 }, '': { seconds: 4, memory: 0.2 } } as const;

const asked = (s: EncodingSchema, ctx: PredictContext = {}) => `${s.submitter}|${s.output.preset}|${ctx.cores ?? '-'}|${ctx.hw_class ?? '-'}`;

/** TEST DOUBLE: a predictor whose duration and memory depend on the hardware class, counting how it is asked. */
function classPredictor() {
  const calls = { predict: 0, each: 0, asked: [] as string[] };
  const usage = (u: Partial<ResourceUsage>): ResourceUsage => ({ cpu_cores: 1, gpu_percent: 0, memory_gb: 0.1, bandwidth_mbps: 1, duration_s: 1, ...u });
  const one = (ctx: PredictContext = {}): Prediction => {
    const c = CLASS[(ctx.hw_class ?? '') as keyof typeof CLASS];
    const speedUp = Math.pow(ctx.cores ?? 1, 0.9), seconds = c.seconds / speedUp;
    // Busy cores as its speed-up implies (sizing takes no more efficiency than the CPU backs).
    return { model_version: 'classes-v1', expected: usage({ duration_s: seconds, memory_gb: c.memory / 2, cpu_cores: speedUp }), upper: usage({ duration_s: seconds * 1.5, memory_gb: c.memory, cpu_cores: speedUp }) };
  };
  const predictor: ResourcePredictor = {
    version: 'classes-v1',
    predict: (s: EncodingSchema, ctx?: PredictContext) => { calls.predict++; calls.asked.push(asked(s, ctx)); return one(ctx); },
    predictEach: (s: EncodingSchema, ctxs: readonly PredictContext[]) => { calls.each++; calls.asked.push(...ctxs.map((c) => asked(s, c))); return ctxs.map(one); },
  };
  return { predictor, calls };
}

const node = (id: string, cpu_model: string, cores: number): NodeCapacity => ({
  node_id: id, address: `127.0.0.1:${id === 'fast' ? 7001 : 7002}`, core_ids: Array.from({ length: cores }, (_, k) => k), memory_gb: 8, bandwidth_mbps: 1000, gpus: [], cpu_model,
});
const schemaFor = (preset: string) => ({ input: { synthetic: { source: 'testsrc2' }, resolution: '640x360', fps: 25, duration_s: 4 }, output: { codec: 'h264', preset, rate_control: { mode: 'crf', crf: 28 } }, priority: 'standard', submitter: 'classes' });

function mixedFleet() {
  const { predictor, calls } = classPredictor();
  const core = new LeaderCore({ predictor, validation: { allowedInputRoots: ['/media'] }, leaseMs: 5_000 });
  core.apply([{ kind: 'ModelChanged', at: 1, version: predictor.version }, { kind: 'Started', at: 1, term: 1, leader_id: 'x', tasks: [] }]);
  core.apply([{ kind: 'Registered', at: 2, capacity: node('slow', 'Slow CPU', 2), running: [] }, { kind: 'Registered', at: 2, capacity: node('fast', 'Fast CPU', 2), running: [] }]);
  // A preset per job, so that the double's log tells jobs apart.
  const presets = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium'];
  let n = 0;
  const submit = (ids: string[], at: number) => core.apply([{ kind: 'Submitted', at, submissions: ids.map((job_id) => ({ envelope: { job_id, submitted_at: 0, schema: schemaFor(presets[n++ % presets.length]) }, stored_at: at, owner: 'test' })) }]).effects;
  return { core, calls, submit };
}

const assigns = (effects: Effect[]) => new Map(effects.flatMap((e) => (e.kind === 'Assign' ? [[e.assignment.task_id, e] as const] : [])));

test('a job on a fleet of two classes goes where its prediction ends soonest, with memory reserved at that class\'s bound', () => {
  const { core, calls, submit } = mixedFleet();
  const before = { ...calls };
  const a = assigns(submit(['a', 'b', 'c'], 10));
  const at = (id: string) => core.ledger.reservation(id);
  assert.is(at('a')?.node_id, 'fast');
  assert.is(at('b')?.node_id, 'fast', 'the second job too, while the fast class has a core');
  assert.is(at('c')?.node_id, 'slow', 'the third where there is room');
  assert.is(at('a')?.memory_gb, CLASS['Fast CPU'].memory, 'reserved at the fast class\'s bound, not the admission one');
  assert.is(at('c')?.memory_gb, CLASS['Slow CPU'].memory, 'reserved at the slow class\'s bound');
  // The agent is handed the prediction the reservation was sized from.
  assert.is(a.get('a')!.assignment.predicted.duration_s, CLASS['Fast CPU'].seconds / Math.pow(at('a')!.core_ids.length, 0.9));
  assert.is(a.get('c')!.assignment.predicted.duration_s, CLASS['Slow CPU'].seconds / Math.pow(at('c')!.core_ids.length, 0.9));
  assert.match(core.active.get('a')!.reason ?? '', /on Fast CPU: predicted 2\.0 s, the soonest of 2\.0 s on Fast CPU, 6\.0 s on Slow CPU/);
  // Admission predicts each job once with no class; the first job's classes come in one batch.
  assert.is(calls.predict - before.predict, 3, 'one admission prediction per job, the classes in batches');
  assert.ok(calls.each - before.each >= 1, 'classes predicted in a batch');
  assert.ok(calls.asked.some((k) => k.endsWith('|1|Fast CPU')) && calls.asked.some((k) => k.endsWith('|1|Slow CPU')));
});

test('a job whose faster class is full is sized from the slower class\'s prediction, and says why the faster one was passed over', () => {
  const { core, submit } = mixedFleet();
  submit(['a'], 10);
  assert.equal(core.ledger.reservation('a')?.core_ids.length, 2, 'alone on an idle fleet: both of the fast node\'s cores');
  assert.is(core.ledger.reservation('a')?.node_id, 'fast');
  submit(['c'], 20);
  const c = core.ledger.reservation('c');
  assert.is(c?.node_id, 'slow');
  assert.is(c?.memory_gb, CLASS['Slow CPU'].memory);
  assert.match(core.active.get('c')!.reason ?? '', /on Slow CPU: predicted [\d.]+ s \(no core free on Fast CPU\)/);
  submit(['d', 'e'], 30);
  assert.is(core.ledger.reservation('e'), undefined, 'nothing left on either class');
  assert.match(core.active.get('e')!.reason ?? '', /no node has room now|no hardware class has room/);
});

test('no job is predicted twice for the same size and class', () => {
  const { calls, submit } = mixedFleet();
  submit(['a', 'b', 'c'], 10);
  submit(['d'], 20);
  assert.equal(calls.asked.length, new Set(calls.asked).size, calls.asked.join('\n'));
});

test('the same events replay to the same placements on a mixed fleet', () => {
  const run = () => { const { core, submit } = mixedFleet(); submit(['a', 'b', 'c'], 10); return ['a', 'b', 'c'].map((id) => JSON.stringify(core.ledger.reservation(id))); };
  assert.equal(run(), run());
});

test.run();
