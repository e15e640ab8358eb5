/**
 * The leader's core (coordinator/core) driven by random event sequences, with the shipped model
 * predicting: the ledger is never over-committed nor double-booked, every job it took is
 * queued, holding a reservation, or ended, and the same events always give the same decisions.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { LeaderCore, decisionsOf, replay, type Effect, type LeaderEvent } from '../../coordinator/core/index.js';
import { loadModelFile } from '../../models/index.js';
import { CorrectedPredictor, marginKey, tableSource, type CorrectionTable } from '../../coordinator/feedback/index.js';
import { TERMINAL_STATES, type EncodingTask, type FeedbackTarget, type NodeCapacity, type TaskStatusReport } from '../../shared/index.js';

const model = loadModelFile();
const LEASE_MS = 5_000;
const newCore = () => new LeaderCore({ predictor: model, validation: { allowedInputRoots: ['/media'] }, leaseMs: LEASE_MS, maxAttempts: 3 });

const node = (i: number, cores: number): NodeCapacity => ({
  node_id: `n${i}`, address: `127.0.0.1:${7000 + i}`, core_ids: Array.from({ length: cores }, (_, k) => k), memory_gb: 4, bandwidth_mbps: 1000, gpus: [], cpu_model: 'Test CPU',
});
const schema = (w: number, preset: string, priority: string, group?: { id: string; size: number }) => ({
  input: { synthetic: { source: 'testsrc2' }, resolution: `${w}x${Math.round((w * 9) / 16 / 2) * 2}`, fps: 25, duration_s: 4 },
  output: { codec: 'h264', preset, rate_control: { mode: 'crf', crf: 28 } },
  priority, submitter: 'prop', ...(group && { group: { ...group, placement: 'spread' } }),
});
const report = (task_id: string, node_id: string, state: TaskStatusReport['state'], failure?: TaskStatusReport['failure']): TaskStatusReport => ({
  task_id, node_id, state, reason: failure ? 'stopped' : '', actual: state === 'succeeded' ? { cpu_cores: 1, gpu_percent: 0, memory_gb: 0.1, bandwidth_mbps: 1, duration_s: 1 } : null,
  output_bytes: 1, output_path: '/out', psnr_db: NaN, ssim: NaN, pinned: true, frames: 1, term: 1, failure,
});

/** What a step of the random sequence does; indices pick among the jobs and nodes known by then. */
type Step =
  | { k: 'register'; node: number; cores: number }
  | { k: 'submit'; jobs: { w: number; preset: string; priority: string; bad: boolean; group: boolean }[] }
  | { k: 'report'; pick: number; outcome: 'running' | 'succeeded' | 'failed' | 'memory' }
  | { k: 'cancel'; pick: number }
  | { k: 'assignFailed'; pick: number; unreachable: boolean }
  | { k: 'cancelAnswered'; pick: number; notRunning: boolean }
  | { k: 'duplicate'; pick: number }
  | { k: 'heartbeat'; node: number; draining: boolean }
  | { k: 'deregister'; node: number }
  | { k: 'late'; pick: number }
  | { k: 'time'; ms: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ k: fc.constant('register' as const), node: fc.integer({ min: 0, max: 3 }), cores: fc.integer({ min: 1, max: 8 }) }),
  fc.record({
    k: fc.constant('submit' as const),
    jobs: fc.array(fc.record({
      w: fc.constantFrom(320, 640, 1280, 1920), preset: fc.constantFrom('ultrafast', 'medium', 'slow'),
      priority: fc.constantFrom('premium', 'standard', 'batch'), bad: fc.integer({ min: 0, max: 9 }).map((n) => n === 0), group: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
    }), { minLength: 1, maxLength: 6 }),
  }),
  fc.record({ k: fc.constant('report' as const), pick: fc.nat(), outcome: fc.constantFrom('running' as const, 'succeeded' as const, 'failed' as const, 'memory' as const) }),
  fc.record({ k: fc.constant('cancel' as const), pick: fc.nat() }),
  fc.record({ k: fc.constant('assignFailed' as const), pick: fc.nat(), unreachable: fc.boolean() }),
  fc.record({ k: fc.constant('cancelAnswered' as const), pick: fc.nat(), notRunning: fc.boolean() }),
  fc.record({ k: fc.constant('duplicate' as const), pick: fc.nat() }),
  fc.record({ k: fc.constant('heartbeat' as const), node: fc.integer({ min: 0, max: 3 }), draining: fc.integer({ min: 0, max: 4 }).map((n) => n === 0) }),
  fc.record({ k: fc.constant('deregister' as const), node: fc.integer({ min: 0, max: 3 }) }),
  fc.record({ k: fc.constant('late' as const), pick: fc.nat() }),
  fc.record({ k: fc.constant('time' as const), ms: fc.integer({ min: 1, max: 8_000 }) }),
);

/**
 * Turns steps into event batches for a core, reading only the core's queries (what it has
 * placed where) to aim reports at real assignments, as agents would.
 */
function drive(core: LeaderCore, steps: Step[], check: (effects: Effect[]) => void): { batches: LeaderEvent[][]; decisions: ReturnType<typeof decisionsOf>[] } {
  let now = 1_000_000, seq = 0;
  const batches: LeaderEvent[][] = [], decisions: ReturnType<typeof decisionsOf>[] = [];
  const feed = (events: LeaderEvent[]) => {
    const { effects } = core.apply(events);
    batches.push(events);
    decisions.push(decisionsOf(effects));
    check(effects);
  };
  const config = { lease_ms: LEASE_MS, max_attempts: 3, placement: 'best-fit', allowed_input_roots: ['/media'] };
  feed([{ kind: 'ModelChanged', at: now, version: model.version }, { kind: 'Started', at: now, term: 1, leader_id: 'prop', tasks: [], config }]);
  const pickActive = (i: number, want?: (t: EncodingTask) => boolean) => {
    const ts = [...core.active.values()].filter((t) => !want || want(t));
    return ts.length ? ts[i % ts.length] : undefined;
  };
  for (const s of steps) {
    now += 10;
    if (s.k === 'time') { now += s.ms; feed([{ kind: 'Tick', at: now }]); continue; }
    if (s.k === 'register') { feed([{ kind: 'Registered', at: now, capacity: node(s.node, s.cores), running: [] }]); continue; }
    if (s.k === 'heartbeat') { feed([{ kind: 'Heartbeat', at: now, node_id: `n${s.node}`, running: [], draining: s.draining }]); continue; }
    if (s.k === 'deregister') { feed([{ kind: 'Deregistered', at: now, node_id: `n${s.node}`, reason: 'stopped' }]); continue; }
    if (s.k === 'submit') {
      feed([{
        kind: 'Submitted', at: now, submissions: s.jobs.map((j) => ({
          envelope: { job_id: `job-${seq++}`, submitted_at: 0, schema: j.bad ? { nonsense: true } : schema(j.w, j.preset, j.priority, j.group ? { id: `g${Math.floor(seq / 3)}`, size: 2 } : undefined) },
          stored_at: now, owner: 'test',
        })),
      }]);
      continue;
    }
    if (s.k === 'late') {
      // An earlier attempt's success, arriving after its task was re-queued (and perhaps placed again).
      const t = pickActive(s.pick, (x) => !!x.earlier?.length);
      if (t) feed([{ kind: 'StatusReported', at: now, report: report(t.id, t.earlier!.at(-1)!.node_id, 'succeeded') }]);
      continue;
    }
    const held = (t: EncodingTask) => !!t.allocation;
    const t = pickActive(s.pick, s.k === 'cancel' || s.k === 'duplicate' ? undefined : held);
    if (!t) continue;
    const at = t.allocation?.node_id ?? 'n0';
    if (s.k === 'report') {
      const rep = s.outcome === 'memory' ? report(t.id, at, 'failed', 'MEMORY_EXCEEDED') : report(t.id, at, s.outcome, s.outcome === 'failed' ? 'ENCODE_FAILED' : undefined);
      feed([{ kind: 'StatusReported', at: now, report: rep }]);
    } else if (s.k === 'cancel') feed([{ kind: 'CancelRequested', at: now, envelope: { job_id: t.id, requested_at: now }, owner: 'test' }]);
    else if (s.k === 'assignFailed') feed([{ kind: 'AssignFailed', at: now, task_id: t.id, node_id: at, reason: 'refused', unreachable: s.unreachable }]);
    else if (s.k === 'cancelAnswered') feed([{ kind: 'CancelAnswered', at: now, task_id: t.id, not_running: s.notRunning, reason: '' }]);
    else feed([{ kind: 'Duplicate', at: now, task_id: t.id }]);
  }
  return { batches, decisions };
}

test('a group is its owner\'s: two owners\' jobs with the same group id stay apart, and one owner\'s jobs form the group whatever submitter label each carries', () => {
  const core = newCore();
  core.apply([1, 2, 3].map((i) => ({ kind: 'Registered', at: 0, capacity: node(i, 2), running: [] }) as LeaderEvent));
  const submit = (id: string, owner: string, submitter: string) => ({
    envelope: { job_id: id, submitted_at: 0, schema: { ...schema(640, 'fast', 'standard', { id: 'ladder-1', size: 2 }), submitter } }, stored_at: 0, owner,
  });
  // alice's first rung and bob's first rung: neither group is whole.
  core.apply([{ kind: 'Submitted', at: 1, submissions: [submit('a1', 'alice', 'web'), submit('b1', 'bob', 'web')] }]);
  assert.equal(core.queue().map((t) => [t.id, t.state]), [['a1', 'queued'], ['b1', 'queued']]);
  assert.match(core.queue()[0].reason ?? '', /waiting for 1 more job\(s\) of group ladder-1/);
  // alice's second rung, labelled differently by its client, completes alice's group alone.
  const { effects } = core.apply([{ kind: 'Submitted', at: 2, submissions: [submit('a2', 'alice', 'batch-tool')] }]);
  const assigned = effects.filter((e) => e.kind === 'Assign').map((e) => (e as Extract<Effect, { kind: 'Assign' }>).assignment.task_id).sort();
  assert.equal(assigned, ['a1', 'a2']);
  assert.equal(core.queue().map((t) => t.id), ['b1']);
});

test('random event sequences never over-commit or double-book the ledger, and every job is queued, holding a reservation, or ended', () => {
  fc.assert(fc.property(fc.array(step, { minLength: 5, maxLength: 60 }), (steps) => {
    const core = newCore();
    drive(core, steps, (effects) => {
      // No over-commit, no double booking: the ledger's own from-scratch check.
      assert.equal(core.ledger.checkInvariants(), []);
      // A job recorded as ended is no longer active, and holds nothing but a superseded attempt's
      // reservation, on that attempt's node, until the node confirms the stop.
      const superseded = core.supersededAttempts();
      for (const e of effects) {
        if (e.kind !== 'Publish' || !TERMINAL_STATES.has(e.event.state)) continue;
        assert.not.ok(core.active.has(e.event.job_id), `${e.event.job_id} ended yet active`);
        assert.is(core.ledger.reservation(e.event.job_id)?.node_id, superseded.get(e.event.job_id), `${e.event.job_id} ended yet holds a reservation`);
      }
      const reserved = new Set([...core.active.keys(), ...superseded.keys()].filter((id) => core.ledger.reservation(id)));
      assert.is(reserved.size, core.ledger.allReservations().length, 'every reservation is an active job\'s or a superseded attempt\'s');
      for (const t of core.active.values()) {
        assert.ok(['queued', 'placed', 'running'].includes(t.state), `${t.id} is active as ${t.state}`);
        if (t.state === 'queued') assert.not.ok(reserved.has(t.id), `queued ${t.id} holds a reservation`);
        else assert.ok(reserved.has(t.id) || !t.allocation, `${t.id} is ${t.state} on ${t.allocation?.node_id} without a reservation`);
        if (t.allocation) assert.is(core.ledger.reservation(t.id)?.node_id, t.allocation.node_id, `${t.id}'s allocation is the ledger's`);
      }
      for (const [id, n] of superseded) assert.not.ok(core.active.has(id), `superseded ${id} is still active on ${n}`);
    });
  }), { numRuns: 150 });
});

test('the same events through a fresh core decide the same, batch by batch (what prescient replay checks)', () => {
  fc.assert(fc.property(fc.array(step, { minLength: 5, maxLength: 40 }), (steps) => {
    const { batches, decisions } = drive(newCore(), steps, () => undefined);
    const lines = batches.map((events, i) => JSON.stringify({ events, decisions: decisions[i] }));
    const r = replay(lines, () => model);
    assert.is(r.differing, 0, JSON.stringify(r.differences[0]));
    assert.is(r.batches, batches.length);
  }), { numRuns: 60 });
});

test('a job whose first record turns out to be a duplicate releases what it reserved', () => {
  const core = newCore();
  core.apply([{ kind: 'ModelChanged', at: 1, version: model.version }, { kind: 'Started', at: 1, term: 1, leader_id: 'x', tasks: [] }]);
  core.apply([{ kind: 'Registered', at: 2, capacity: node(0, 4), running: [] }]);
  const { effects } = core.apply([{ kind: 'Submitted', at: 3, submissions: [{ envelope: { job_id: 'dup-1', submitted_at: 0, schema: schema(640, 'medium', 'standard') }, stored_at: 3, owner: 'test' }] }]);
  assert.ok(effects.some((e) => e.kind === 'Record' && e.first && e.task.id === 'dup-1'), 'its first write is a create');
  assert.ok(core.ledger.reservation('dup-1'));
  core.apply([{ kind: 'Duplicate', at: 4, task_id: 'dup-1' }]);
  assert.is(core.ledger.reservation('dup-1'), undefined);
  assert.not.ok(core.active.has('dup-1'));
});

test('a leader that predicted with feedback corrections replays the same from the corrections its log carries, and not without them', () => {
  let table: CorrectionTable = { groups: [], margins: [] };
  let revision = 0;
  const src = { correction: (v: string, n: string, c: string, t: FeedbackTarget) => tableSource(table).correction(v, n, c, t), memoryMargin: (v: string, c: string) => tableSource(table).memoryMargin(v, c), get revision() { return revision; }, corrections: () => table };
  const predictor = new CorrectedPredictor(model, () => src);
  const core = new LeaderCore({ predictor, validation: { allowedInputRoots: ['/media'] }, leaseMs: LEASE_MS });
  const config = { lease_ms: LEASE_MS, placement: 'best-fit', allowed_input_roots: ['/media'] };
  const lines: string[] = [];
  // As the shell does: a ModelChanged event, with the table, whenever the corrections' revision moves.
  let seen = -1;
  const feed = (events: LeaderEvent[]) => {
    if (revision !== seen) { seen = revision; events = [{ kind: 'ModelChanged', at: events[0].at, version: model.version, revision, corrections: table }, ...events]; }
    lines.push(JSON.stringify({ events, decisions: decisionsOf(core.apply(events).effects) }));
  };
  const job = (id: string, at: number): LeaderEvent => ({ kind: 'Submitted', at, submissions: [{ envelope: { job_id: id, submitted_at: 0, schema: schema(640, 'medium', 'standard') }, stored_at: at, owner: 'test' }] });
  feed([{ kind: 'Started', at: 1, term: 1, leader_id: 'x', tasks: [], config }]);
  // Cores to spare, so neither job waits for more to arrive (sizing's grace): only memory can stop one.
  feed([{ kind: 'Registered', at: 2, capacity: node(0, 16), running: [] }]);
  feed([job('before', 3)]);
  // h264's memory margin raised far past the node's 4 GB: the next job cannot be placed.
  table = { groups: [], margins: [[marginKey(model.version, 'h264'), 100]] };
  revision++;
  feed([job('after', 4)]);
  assert.ok(core.ledger.reservation('before'));
  assert.is(core.ledger.reservation('after'), undefined);
  assert.is(replay(lines, () => model).differing, 0);
  const stripped = lines.map((l) => l.replace(/,"corrections":\{[^}]*\}/, ''));
  assert.ok(replay(stripped, () => model).differing > 0, 'without the logged corrections the replay decides otherwise');
});

test('once every core is taken a pass stops, the jobs behind say why, and a finished job\'s cores go to the next in line', () => {
  const core = newCore();
  core.apply([{ kind: 'ModelChanged', at: 1, version: model.version }, { kind: 'Started', at: 1, term: 1, leader_id: 'x', tasks: [] }]);
  core.apply([{ kind: 'Registered', at: 2, capacity: node(0, 2), running: [] }]);
  const jobs = ['a', 'b', 'c', 'd'];
  core.apply([{ kind: 'Submitted', at: 3, submissions: jobs.map((id, i) => ({ envelope: { job_id: id, submitted_at: 0, schema: schema(640, 'medium', 'standard') }, stored_at: 3 + i, owner: 'test' })) }]);
  const placed = jobs.filter((id) => core.ledger.reservation(id));
  assert.equal(placed, ['a', 'b'], 'one core each, in queue order');
  for (const id of ['c', 'd']) assert.is(core.active.get(id)!.reason, 'no node has room now: every core of the nodes it may use is taken');
  core.apply([{ kind: 'StatusReported', at: 10, report: report('a', 'n0', 'succeeded') }]);
  assert.ok(core.ledger.reservation('c'), 'the next in line got the freed core');
  assert.is(core.ledger.reservation('d'), undefined);
});

test('stop on a batch job is refused by the leader too, and a cancel of it still works', () => {
  const core = newCore();
  core.apply([{ kind: 'ModelChanged', at: 1, version: model.version }, { kind: 'Started', at: 1, term: 1, leader_id: 'x', tasks: [] }]);
  core.apply([{ kind: 'Registered', at: 2, capacity: node(0, 1), running: [] }]);
  core.apply([{ kind: 'Submitted', at: 3, submissions: [{ envelope: { job_id: 'b', submitted_at: 0, schema: schema(640, 'medium', 'standard') }, stored_at: 3, owner: 'test' }] }]);
  assert.ok(core.ledger.reservation('b'));
  const stop = core.apply([{ kind: 'CancelRequested', at: 4, envelope: { job_id: 'b', requested_at: 4, action: 'stop' }, owner: 'test' }]);
  assert.not.ok(stop.effects.some((e) => e.kind === 'Cancel'), 'no encode is stopped');
  assert.ok(stop.effects.some((e) => e.kind === 'Alert' && /stop b refused: it is a batch job/.test(e.message)));
  assert.is(core.active.get('b')!.cancel_requested_at, undefined);
  const cancel = core.apply([{ kind: 'CancelRequested', at: 5, envelope: { job_id: 'b', requested_at: 5, action: 'cancel' }, owner: 'test' }]);
  assert.ok(cancel.effects.some((e) => e.kind === 'Cancel' && e.task_id === 'b'));
});

test('a job re-queued while its first node\'s success was on the way takes that success, once placed again too: the newer attempt is stopped, its cores held until its node confirms', () => {
  const core = newCore();
  core.apply([{ kind: 'ModelChanged', at: 1, version: model.version }, { kind: 'Started', at: 1, term: 1, leader_id: 'x', tasks: [] }]);
  core.apply([{ kind: 'Registered', at: 2, capacity: node(0, 1), running: [] }, { kind: 'Registered', at: 2, capacity: node(1, 1), running: [] }]);
  core.apply([{ kind: 'Submitted', at: 3, submissions: [{ envelope: { job_id: 'j', submitted_at: 0, schema: schema(640, 'medium', 'standard') }, stored_at: 3, owner: 'test' }] }]);
  const first = core.ledger.reservation('j')!.node_id;
  const other = first === 'n0' ? 'n1' : 'n0';
  // The first node goes silent (its agent was killed with the report unsent): it is lost, and the job placed on the other.
  const later = 3 + LEASE_MS + 1;
  core.apply([{ kind: 'Heartbeat', at: later - 1, node_id: other, running: [] }, { kind: 'Tick', at: later }]);
  assert.is(core.ledger.reservation('j')?.node_id, other, 'placed again on the other node');
  assert.equal(core.active.get('j')!.earlier?.map((a) => a.node_id), [first]);
  // The restarted agent delivers its success.
  const { effects, replies } = core.apply([{ kind: 'StatusReported', at: later + 10, report: report('j', first, 'succeeded') }]);
  assert.equal(replies[0], { kind: 'ack', ok: true, reason: '' });
  const ended = effects.find((e) => e.kind === 'Publish' && e.event.job_id === 'j');
  assert.is(ended?.kind === 'Publish' && ended.event.state, 'succeeded');
  assert.is(ended?.kind === 'Publish' && ended.event.node_id, first, 'it ran where the success came from');
  assert.ok(effects.some((e) => e.kind === 'Cancel' && e.task_id === 'j' && e.node_id === other), 'the newer attempt is stopped');
  assert.is(core.ledger.reservation('j')?.node_id, other, 'its cores are held until the stop is confirmed');
  // The stopped attempt's report frees them (the task stays succeeded).
  const after = core.apply([{ kind: 'StatusReported', at: later + 20, report: report('j', other, 'failed', 'CANCELLED') }]);
  assert.is(core.ledger.reservation('j'), undefined);
  assert.not.ok(after.effects.some((e) => e.kind === 'Publish' && e.event.job_id === 'j'), 'the job\'s outcome does not change');
});

test('a node that never held a job cannot report on it, and an earlier attempt\'s failure changes nothing', () => {
  const core = newCore();
  core.apply([{ kind: 'ModelChanged', at: 1, version: model.version }, { kind: 'Started', at: 1, term: 1, leader_id: 'x', tasks: [] }]);
  core.apply([{ kind: 'Registered', at: 2, capacity: node(0, 1), running: [] }]);
  core.apply([{ kind: 'Submitted', at: 3, submissions: ['a', 'b'].map((id) => ({ envelope: { job_id: id, submitted_at: 0, schema: schema(640, 'medium', 'standard') }, stored_at: 3, owner: 'test' })) }]);
  assert.ok(core.ledger.reservation('a'));
  assert.is(core.active.get('b')!.state, 'queued');
  const stranger = core.apply([
    { kind: 'StatusReported', at: 4, report: report('a', 'n9', 'succeeded') },
    { kind: 'StatusReported', at: 4, report: report('b', 'n9', 'succeeded') },
  ]);
  assert.equal(stranger.replies.map((r) => r?.kind === 'ack' && r.ok), [false, false]);
  assert.match((stranger.replies[1] as { reason: string }).reason, 'was not assigned to n9');
  assert.is(core.active.get('b')!.state, 'queued');
  // a's node stops answering and a is re-queued; the node's late failure of that attempt is old news.
  core.apply([{ kind: 'AssignFailed', at: 5, task_id: 'a', node_id: 'n0', reason: 'gone', unreachable: true }]);
  const before = core.active.get('a')!.state;
  const late = core.apply([{ kind: 'StatusReported', at: 6, report: report('a', 'n0', 'failed', 'ENCODE_FAILED') }]);
  assert.ok(late.replies[0]?.kind === 'ack' && late.replies[0].ok);
  assert.is(core.active.get('a')!.state, before);
});

test('an encode past its time limit is stopped and run again, and one that keeps hanging fails after its attempts, saying why', () => {
  const core = new LeaderCore({ predictor: model, validation: { allowedInputRoots: ['/media'] }, leaseMs: 60_000, maxAttempts: 2, timeLimit: { factor: 3, min_ms: 10_000 } });
  core.apply([{ kind: 'ModelChanged', at: 1, version: model.version }, { kind: 'Started', at: 1, term: 1, leader_id: 'x', tasks: [] }]);
  // One core: the job takes it at once (with more, sizing may wait a moment for company).
  core.apply([{ kind: 'Registered', at: 2, capacity: node(0, 1), running: [] }]);
  core.apply([{ kind: 'Submitted', at: 3, submissions: [{ envelope: { job_id: 'hung', submitted_at: 0, schema: schema(640, 'medium', 'standard') }, stored_at: 3, owner: 'test' }] }]);
  const t = core.active.get('hung')!;
  const limitMs = Math.max(10_000, 3 * t.predicted!.upper.duration_s * 1000);
  const beat = (at: number): LeaderEvent => ({ kind: 'Heartbeat', at, node_id: 'n0', running: [] });
  // Within its limit nothing happens.
  const before = core.apply([beat(3 + limitMs - 5), { kind: 'Tick', at: 3 + limitMs - 1 }]);
  assert.not.ok(before.effects.some((e) => e.kind === 'Cancel'));
  // Past it: its node is asked to stop it, and its event says why.
  const past = core.apply([beat(3 + limitMs), { kind: 'Tick', at: 3 + limitMs + 1 }]);
  assert.ok(past.effects.some((e) => e.kind === 'Cancel' && e.task_id === 'hung' && e.node_id === 'n0'));
  const ev = past.effects.find((e) => e.kind === 'Publish' && e.event.job_id === 'hung');
  assert.is(ev?.kind === 'Publish' && ev.event.notice, 'time_limit');
  assert.match(t.reason!, /past its time limit of [\d.]+ s \(3× the upper bound of its predicted duration, at least 10 s\)/);
  assert.ok(core.ledger.reservation('hung'), 'its cores are held until the node confirms the stop');
  // The node confirms: it runs again (a second attempt), on the cores it had.
  let at = 3 + limitMs + 10;
  core.apply([{ kind: 'StatusReported', at, report: report('hung', 'n0', 'failed', 'CANCELLED') }]);
  assert.is(t.attempts, 2);
  assert.ok(core.ledger.reservation('hung'), 'placed again');
  assert.is(t.time_limit_stop_at, undefined);
  // It hangs again: after its last attempt it fails, and says why.
  const again = at + limitMs + 10;
  core.apply([beat(again - 1), { kind: 'Tick', at: again }]);
  at = again + 10;
  const last = core.apply([{ kind: 'StatusReported', at, report: report('hung', 'n0', 'failed', 'CANCELLED') }]);
  assert.not.ok(core.active.has('hung'));
  const failed = last.effects.find((e) => e.kind === 'Publish' && e.event.job_id === 'hung');
  assert.is(failed?.kind === 'Publish' && failed.event.state, 'failed');
  assert.match(failed?.kind === 'Publish' ? failed.event.reason ?? '' : '', /^gave up after 2 attempts; last: its encode ran [\d.]+ s, past its time limit/);
  assert.is(core.ledger.reservation('hung'), undefined);
});

test('a job whose deadline passes before it ends says so once, in an event and on every later one', () => {
  const core = newCore();
  core.apply([{ kind: 'ModelChanged', at: 1, version: model.version }, { kind: 'Started', at: 1, term: 1, leader_id: 'x', tasks: [] }]);
  // No node yet: it waits.
  const deadline = 1_000_000;
  core.apply([{ kind: 'Submitted', at: 2, submissions: [{ envelope: { job_id: 'late', submitted_at: 0, schema: { ...schema(640, 'medium', 'standard'), deadline: new Date(deadline).toISOString() } }, stored_at: 2, owner: 'test' }] }]);
  const notices = (effects: Effect[]) => effects.flatMap((e) => (e.kind === 'Publish' && e.event.job_id === 'late' && e.event.notice ? [e.event.notice] : []));
  assert.equal(notices(core.apply([{ kind: 'Tick', at: deadline - 1 }]).effects), []);
  const missed = core.apply([{ kind: 'Tick', at: deadline + 1 }]).effects;
  assert.equal(notices(missed), ['deadline_missed']);
  assert.equal(notices(core.apply([{ kind: 'Tick', at: deadline + 1001 }]).effects), [], 'once');
  // Placed later: its events carry when the deadline was missed.
  const placed = core.apply([{ kind: 'Registered', at: deadline + 2000, capacity: node(0, 2), running: [] }]).effects;
  const ev = placed.find((e) => e.kind === 'Publish' && e.event.job_id === 'late' && e.event.state === 'placed');
  assert.is(ev?.kind === 'Publish' && ev.event.deadline_missed_at, deadline + 1);
});

test('a job that ends after its deadline between two ticks says so on its last event', () => {
  const core = newCore();
  core.apply([{ kind: 'ModelChanged', at: 1, version: model.version }, { kind: 'Started', at: 1, term: 1, leader_id: 'x', tasks: [] }, { kind: 'Registered', at: 1, capacity: node(0, 2), running: [] }]);
  core.apply([{ kind: 'Submitted', at: 2, submissions: [{ envelope: { job_id: 'tight', submitted_at: 0, schema: { ...schema(640, 'medium', 'standard'), deadline: new Date(100).toISOString() } }, stored_at: 2, owner: 'test' }] }]);
  const done = core.apply([{ kind: 'StatusReported', at: 150, report: report('tight', core.ledger.reservation('tight')!.node_id, 'succeeded') }]).effects;
  const ev = done.find((e) => e.kind === 'Publish' && e.event.job_id === 'tight');
  assert.ok(ev?.kind === 'Publish' && ev.event.state === 'succeeded' && ev.event.notice === 'deadline_missed' && ev.event.deadline_missed_at === 150);
});

test('a draining node gets nothing new; once its agent deregisters, what it held runs elsewhere at once, the attempt not counted', () => {
  const core = newCore();
  core.apply([{ kind: 'ModelChanged', at: 1, version: model.version }, { kind: 'Started', at: 1, term: 1, leader_id: 'x', tasks: [] }]);
  core.apply([{ kind: 'Registered', at: 2, capacity: node(0, 1), running: [] }]);
  core.apply([{ kind: 'Submitted', at: 3, submissions: [{ envelope: { job_id: 'held', submitted_at: 0, schema: schema(640, 'medium', 'standard') }, stored_at: 3, owner: 'test' }] }]);
  assert.is(core.ledger.reservation('held')?.node_id, 'n0');
  core.apply([{ kind: 'Heartbeat', at: 4, node_id: 'n0', running: [], draining: true }, { kind: 'Registered', at: 4, capacity: node(1, 1), running: [] }]);
  // n0 would have room for nothing anyway; n1 is free: a new job goes there, and after n0 is out, held does too.
  core.apply([{ kind: 'Submitted', at: 5, submissions: [{ envelope: { job_id: 'new', submitted_at: 0, schema: schema(640, 'medium', 'standard') }, stored_at: 5, owner: 'test' }] }]);
  assert.is(core.ledger.reservation('new')?.node_id, 'n1');
  core.apply([{ kind: 'StatusReported', at: 6, report: report('new', 'n1', 'succeeded') }]);
  const { effects } = core.apply([{ kind: 'Deregistered', at: 7, node_id: 'n0', reason: 'drained and stopped' }]);
  assert.not.ok(core.ledger.snapshot().node('n0'), 'n0 left the ledger at once');
  assert.is(core.ledger.reservation('held')?.node_id, 'n1', 'held runs on n1 now');
  assert.is(core.active.get('held')!.attempts, 1, 'the attempt cut short is not counted');
  assert.ok(effects.some((e) => e.kind === 'Assign' && e.assignment.task_id === 'held' && e.node_id === 'n1'));
});

test.run();
