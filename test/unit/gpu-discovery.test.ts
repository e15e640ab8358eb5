/**
 * GPU discovery: nvidia-smi's answer → the model table → the agent's registration → the wire →
 * the ledger's encoder sessions → `prescient nodes`. No GPU has been lent to these tests: the
 * nvidia-smi lines below are written by hand in the format of
 * `nvidia-smi --query-gpu=index,uuid,pci.bus_id,driver_version,memory.total,name --format=csv,noheader,nounits`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import { DEFAULT_GPU_SESSIONS, Ledger, type Plan } from '../../coordinator/ledger/index.js';
import { place } from '../../coordinator/index.js';
import { gpuTable, nodesView } from '../../coordinator/cli/fleet.js';
import { coordinatorService, PROTO_PATH, type GpuCapacity, type NodeCapacity, type RegisterRequest } from '../../shared/index.js';
import { GPU_QUERY, describeGpu, gpuCapacity, parseNvidiaSmiGpus, type GpuInfo } from '../../node-agent/hardware.js';
import { GPU_MODELS, SESSIONS_PER_ENGINE, UNKNOWN_MODEL_SESSIONS, consumerSessionCap, describeGpuModel } from '../../node-agent/gpu-models.js';

const line = (index: number, driver: string, mib: number, name: string, bus = `00000000:${(index + 1).toString(16).padStart(2, '0').toUpperCase()}:00.0`) =>
  `${index}, GPU-${String(index).repeat(8)}-1f2a-4b3c-8d4e-5f6a7b8c9d0e, ${bus}, ${driver}, ${mib}, ${name}`;

const FIXTURES = {
  rtx4090r535: line(0, '535.183.01', 24564, 'NVIDIA GeForce RTX 4090'),
  rtx4090r551: line(0, '551.86', 24564, 'NVIDIA GeForce RTX 4090'),
  rtx4090r550: line(0, '550.54.15', 24564, 'NVIDIA GeForce RTX 4090'),
  rtx3060r470: line(0, '470.256.02', 12288, 'NVIDIA GeForce RTX 3060'),
  t4: line(0, '535.161.08', 15360, 'Tesla T4', '00000000:00:1E.0'),
  l4: line(0, '550.54.15', 23034, 'NVIDIA L4', '00000000:00:03.0'),
  a100: line(0, '535.104.05', 81920, 'NVIDIA A100-SXM4-80GB', '00000000:07:00.0'),
  h100: line(0, '550.54.15', 81559, 'NVIDIA H100 80GB HBM3', '00000000:18:00.0'),
  a6000: line(0, '535.183.01', 49140, 'NVIDIA RTX A6000'),
  unknown: line(0, '550.54.15', 16384, 'NVIDIA Prototype X1, engineering sample'),
};

const one = (fixture: string): GpuInfo => {
  const gpus = parseNvidiaSmiGpus(`${fixture}\n`);
  assert.is(gpus.length, 1, `one GPU in ${JSON.stringify(fixture)}`);
  return describeGpu(gpus[0]);
};
const video = (g: GpuInfo) => ({ nvenc: g.nvenc_engines, nvdec: g.nvdec_engines, sessions: g.sessions, profile: g.profile });

const capacity = (node_id: string, gpus: GpuCapacity[], cores = 32): NodeCapacity => ({
  node_id, address: '127.0.0.1:1', core_ids: Array.from({ length: cores }, (_, i) => i), memory_gb: 64, bandwidth_mbps: 1000, cpu_model: 'test', gpus,
});
const gpuPlan = (task_id: string, node_id: string, core: number, gpu = 0): Plan => ({ task_id, node_id, core_ids: [core], gpu_ids: [gpu], memory_gb: 1, bandwidth_mbps: 1 });
const refusal = (r: { ok: boolean; code?: string; reason?: string }) => (r.ok ? 'ok' : `${r.code}: ${r.reason}`);

// ── parsing nvidia-smi ───────────────────────────────────────────────────────────────────

test('the agent asks nvidia-smi for the name last, so that nothing follows a comma in it', () => {
  assert.equal([...GPU_QUERY], ['index', 'uuid', 'pci.bus_id', 'driver_version', 'memory.total', 'name']);
});

test('an nvidia-smi line becomes a GPU with its driver, PCI address, UUID and memory in GB', () => {
  assert.equal(parseNvidiaSmiGpus(`${FIXTURES.h100}\n`), [{
    id: 0, name: 'NVIDIA H100 80GB HBM3', memory_gb: 81559 / 1024, driver: '550.54.15',
    pci_bus_id: '00000000:18:00.0', uuid: 'GPU-00000000-1f2a-4b3c-8d4e-5f6a7b8c9d0e',
  }]);
});

test('a model name with a comma in it is kept whole', () => {
  assert.is(one(FIXTURES.unknown).name, 'NVIDIA Prototype X1, engineering sample');
});

test('several GPUs on one node are listed in nvidia-smi order, CRLF line ends and blank lines aside', () => {
  const out = [line(0, '550.54.15', 23034, 'NVIDIA L4'), '', line(1, '550.54.15', 23034, 'NVIDIA L4')].join('\r\n');
  assert.equal(parseNvidiaSmiGpus(out).map((g) => [g.id, g.name]), [[0, 'NVIDIA L4'], [1, 'NVIDIA L4']]);
});

test('malformed lines are ignored, and no GPU is invented from them', () => {
  const out = [
    'NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver.',
    'No devices were found',
    '[N/A], [N/A], [N/A], [N/A], [N/A], [N/A]',
    '0, NVIDIA H100 80GB HBM3, 81559', // the old three-column query: too few columns
    line(1, '550.54.15', 0, 'NVIDIA L4').replace(', 0, ', ', [N/A], '), // memory unreadable
    '2, GPU-x, 00000000:03:00.0, 550.54.15, 23034, ', // no name
    '-1, GPU-x, 00000000:03:00.0, 550.54.15, 23034, NVIDIA L4', // no index
    line(3, '550.54.15', 23034, 'NVIDIA L4'),
    line(3, '550.54.15', 23034, 'NVIDIA L4 (again)'), // an index already seen
    '',
  ].join('\n');
  assert.equal(parseNvidiaSmiGpus(out).map((g) => [g.id, g.name]), [[3, 'NVIDIA L4']]);
  assert.equal(parseNvidiaSmiGpus(''), []);
});

test('unreadable driver, PCI and UUID fields become empty rather than dropping the GPU', () => {
  const [g] = parseNvidiaSmiGpus('0, [N/A], [Not Supported], [N/A], 23034, NVIDIA L4\n');
  assert.equal([g.driver, g.pci_bus_id, g.uuid], ['', '', '']);
});

// ── the model table ──────────────────────────────────────────────────────────────────────

test('a GeForce RTX 4090 runs 5 sessions on driver 535 and 8 on driver 551 (or Linux 550)', () => {
  assert.equal(video(one(FIXTURES.rtx4090r535)), { nvenc: 2, nvdec: 1, sessions: 5, profile: 'known' });
  assert.equal(video(one(FIXTURES.rtx4090r551)), { nvenc: 2, nvdec: 1, sessions: 8, profile: 'known' });
  assert.equal(video(one(FIXTURES.rtx4090r550)), { nvenc: 2, nvdec: 1, sessions: 8, profile: 'known' });
});

test('a consumer card on a driver before 530 runs 3 sessions, and one whose driver is unreadable 3, flagged assumed', () => {
  assert.equal(video(one(FIXTURES.rtx3060r470)), { nvenc: 1, nvdec: 1, sessions: 3, profile: 'known' });
  assert.equal(video(describeGpu({ ...one(FIXTURES.rtx4090r551), driver: '' })), { nvenc: 2, nvdec: 1, sessions: 3, profile: 'assumed' });
  assert.equal([consumerSessionCap('529.99'), consumerSessionCap('530.30.02'), consumerSessionCap('549.1'), consumerSessionCap('550.40.07'), consumerSessionCap('[N/A]')], [3, 5, 5, 8, 3]);
});

test('data-centre and professional cards are not driver-capped: their sessions follow their NVENC engines', () => {
  assert.equal(video(one(FIXTURES.t4)), { nvenc: 1, nvdec: 2, sessions: SESSIONS_PER_ENGINE, profile: 'known' });
  assert.equal(video(one(FIXTURES.l4)), { nvenc: 2, nvdec: 4, sessions: 2 * SESSIONS_PER_ENGINE, profile: 'known' });
  assert.equal(video(one(FIXTURES.a6000)), { nvenc: 1, nvdec: 2, sessions: SESSIONS_PER_ENGINE, profile: 'known' });
});

test('an A100 and an H100 have no NVENC, so they get 0 encoder sessions', () => {
  assert.equal(video(one(FIXTURES.a100)), { nvenc: 0, nvdec: 5, sessions: 0, profile: 'known' });
  assert.equal(video(one(FIXTURES.h100)), { nvenc: 0, nvdec: 7, sessions: 0, profile: 'known' });
  assert.equal(describeGpuModel('NVIDIA A30', '550.54.15').sessions, 0);
});

test('a model the table does not know gets the conservative default, flagged assumed with the reason', () => {
  const g = one(FIXTURES.unknown);
  assert.equal(video(g), { nvenc: 1, nvdec: 1, sessions: UNKNOWN_MODEL_SESSIONS, profile: 'assumed' });
  assert.match(g.basis, /not in the model table/);
  assert.is(UNKNOWN_MODEL_SESSIONS, DEFAULT_GPU_SESSIONS);
});

test('similar names do not catch each other: A10 is not A100, L4 is not L40, A40 is not RTX A4000', () => {
  assert.is(describeGpuModel('NVIDIA A10', '550.54.15').nvenc_engines, 1);
  assert.is(describeGpuModel('NVIDIA A100 80GB PCIe', '550.54.15').nvenc_engines, 0);
  assert.is(describeGpuModel('NVIDIA L40S', '550.54.15').nvenc_engines, 3);
  assert.is(describeGpuModel('NVIDIA L4', '550.54.15').nvenc_engines, 2);
  assert.is(describeGpuModel('NVIDIA RTX A4000', '550.54.15').profile, 'assumed');
});

test('every row of the table is reached by some name: none is hidden behind an earlier one', () => {
  const samples = ['NVIDIA H100 PCIe', 'NVIDIA A800 80GB PCIe', 'NVIDIA A30', 'NVIDIA L40', 'NVIDIA L4', 'NVIDIA A10G', 'Tesla T4', 'Tesla V100-SXM2-16GB',
    'NVIDIA RTX 6000 Ada Generation', 'NVIDIA RTX 4000 Ada Generation', 'NVIDIA RTX A5000', 'NVIDIA GeForce RTX 5090', 'NVIDIA GeForce RTX 5080',
    'NVIDIA GeForce RTX 4080 SUPER', 'NVIDIA GeForce GT 1030', 'NVIDIA GeForce RTX 3080', 'NVIDIA TITAN V'];
  const reached = new Set(samples.map((n) => GPU_MODELS.findIndex((m) => m.pattern.test(n))));
  assert.equal([...reached].sort((a, b) => a - b), GPU_MODELS.map((_, i) => i));
});

// ── registration, the wire and the ledger ────────────────────────────────────────────────

test('the agent registers driver, engines, sessions and profile, and nothing agent-local', () => {
  assert.equal(gpuCapacity(one(FIXTURES.h100)), {
    id: 0, name: 'NVIDIA H100 80GB HBM3', memory_gb: 81559 / 1024, sessions: 0, driver: '550.54.15', nvenc_engines: 0, nvdec_engines: 7, profile: 'known',
  });
});

test('the ledger refuses an NVENC reservation on a GPU with 0 sessions, and still places CPU work on its node', () => {
  const l = new Ledger(1, 10_000);
  l.upsertNode(capacity('h100', [gpuCapacity(one(FIXTURES.h100))]), 0);
  assert.equal(l.snapshot().node('h100')!.gpus, [{ id: 0, sessions: 0, free_sessions: 0 }]);
  assert.equal(l.snapshot().node('h100')!.free_gpu_ids, []);
  assert.match(refusal(l.commit(gpuPlan('enc', 'h100', 0), 0)), /^conflict: gpu 0 on h100 has no encoder \(NVENC\)/);
  assert.ok(l.commit({ task_id: 'cpu', node_id: 'h100', core_ids: [1], gpu_ids: [], memory_gb: 1, bandwidth_mbps: 1 }, 0).ok);
  assert.equal(l.checkInvariants(), []);
});

test('a GPU with N sessions takes N NVENC reservations at once and refuses the next', () => {
  const l = new Ledger(1, 10_000);
  l.upsertNode(capacity('rtx', [gpuCapacity(one(FIXTURES.rtx4090r535))]), 0);
  for (let i = 0; i < 5; i++) assert.ok(l.commit(gpuPlan(`t${i}`, 'rtx', i), 0).ok, `session ${i + 1} of 5`);
  assert.match(refusal(l.commit(gpuPlan('t5', 'rtx', 5), 0)), /^conflict: gpu 0 on rtx has no free encoder session \(5 of 5 in use\)/);
  assert.ok(l.release('t0'));
  assert.ok(l.commit(gpuPlan('t5', 'rtx', 5), 0).ok);
  assert.equal(l.checkInvariants(), []);
});

test('placement sends a GPU job past a GPU without NVENC to one with a free session', () => {
  const l = new Ledger(1, 10_000);
  l.upsertNode(capacity('a-h100', [gpuCapacity(one(FIXTURES.h100))]), 0);
  l.upsertNode(capacity('b-l4', [gpuCapacity(one(FIXTURES.l4))]), 0);
  const r = place({ task_id: 'j', cores: 1, gpus: 1, memory_gb: 1, bandwidth_mbps: 1 }, l.snapshot());
  assert.equal(r.kind === 'placed' && [r.plan.node_id, r.plan.gpu_ids], ['b-l4', [0]]);
});

test('a GPU job on a fleet whose only GPU has no NVENC is refused as one that never fits, not queued forever', () => {
  const l = new Ledger(1, 10_000);
  l.upsertNode(capacity('a-h100', [gpuCapacity(one(FIXTURES.h100))]), 0);
  const r = place({ task_id: 'j', cores: 1, gpus: 1, memory_gb: 1, bandwidth_mbps: 1 }, l.snapshot());
  assert.is(r.kind, 'infeasible', JSON.stringify(r));
  assert.match(JSON.stringify(r), /0 of its 1 have one/);
});

/** The proto as agents before GPU discovery had it: message Gpu with fields 1-4 only. */
function oldProto(dir: string): string {
  const text = readFileSync(PROTO_PATH, 'utf8');
  const old = text.replace(/message Gpu \{[\s\S]*?\n\}/, 'message Gpu {\n  uint32 id = 1;\n  string name = 2;\n  double memory_gb = 3;\n  uint32 sessions = 4;\n}');
  assert.ok(old !== text && !/nvenc_engines/.test(old), 'the Gpu message was found and cut back');
  const file = path.join(dir, 'prescient-old.proto');
  writeFileSync(file, old);
  return file;
}

test('an old agent\'s Gpu, without the new fields, still gets the ledger\'s default sessions', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gpu-proto-'));
  try {
    const def = protoLoader.loadSync(oldProto(dir), { keepCase: true, longs: Number, enums: String, defaults: true, arrays: true });
    const oldRegister = (def['prescient.v1.Coordinator'] as protoLoader.ServiceDefinition).Register;
    const sent: RegisterRequest = { capacity: capacity('old', [{ id: 0, name: 'Tesla T4', memory_gb: 15 }]), running: [] };
    // What the leader's server decodes from the old agent's bytes.
    const got = coordinatorService().Register.requestDeserialize(oldRegister.requestSerialize(sent)) as RegisterRequest;
    assert.equal(got.capacity.gpus, [{ id: 0, name: 'Tesla T4', memory_gb: 15, sessions: 0, driver: '', nvenc_engines: 0, nvdec_engines: 0, profile: '' }]);
    const l = new Ledger(1, 10_000);
    l.upsertNode(got.capacity, 0);
    assert.equal(l.snapshot().node('old')!.gpus, [{ id: 0, sessions: DEFAULT_GPU_SESSIONS, free_sessions: DEFAULT_GPU_SESSIONS }]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a new agent\'s 0 sessions cross the wire as "no NVENC", not as "use the default"', () => {
  const sent: RegisterRequest = { capacity: capacity('new', [gpuCapacity(one(FIXTURES.h100))]), running: [] };
  const wire = coordinatorService().Register;
  const got = wire.requestDeserialize(wire.requestSerialize(sent)) as RegisterRequest;
  const l = new Ledger(1, 10_000);
  l.upsertNode(got.capacity, 0);
  assert.is(l.snapshot().node('new')!.gpu_sessions, 0);
});

// ── prescient nodes ──────────────────────────────────────────────────────────────────────

function fleet(): Ledger {
  const l = new Ledger(4, 10_000);
  l.upsertNode(capacity('gpu-rtx', [gpuCapacity(one(FIXTURES.rtx4090r551))]), 0);
  l.upsertNode(capacity('gpu-h100', [gpuCapacity(one(FIXTURES.h100))]), 0);
  l.upsertNode(capacity('gpu-proto', [gpuCapacity(one(FIXTURES.unknown))]), 0);
  l.upsertNode(capacity('gpu-old', [{ id: 0, name: 'Tesla T4', memory_gb: 15, sessions: 0, driver: '', nvenc_engines: 0, nvdec_engines: 0, profile: '' }]), 0);
  l.upsertNode(capacity('cpu-only', []), 0);
  assert.ok(l.commit(gpuPlan('enc', 'gpu-rtx', 0), 0).ok);
  return l;
}

test('prescient nodes --json gives each GPU its model, memory, driver, engines, sessions and profile', () => {
  const rows = nodesView(fleet().toState(), 0);
  const gpus = Object.fromEntries(rows.map((r) => [r.node_id, r.gpus]));
  assert.equal(gpus['gpu-rtx'], [{ id: 0, model: 'NVIDIA GeForce RTX 4090', memory_gb: 24564 / 1024, driver: '551.86', nvenc_engines: 2, nvdec_engines: 1, sessions: 8, free_sessions: 7, profile: 'known' }]);
  assert.equal(gpus['gpu-h100'][0].sessions, 0);
  assert.is(gpus['gpu-proto'][0].profile, 'assumed');
  assert.equal(gpus['gpu-old'], [{ id: 0, model: 'Tesla T4', memory_gb: 15, driver: null, nvenc_engines: null, nvdec_engines: null, sessions: DEFAULT_GPU_SESSIONS, free_sessions: DEFAULT_GPU_SESSIONS, profile: 'unreported' }]);
  assert.equal(gpus['cpu-only'], []);
});

test('the human GPU table has one compact row per GPU and says which figures are assumed or defaults', () => {
  const text = gpuTable(nodesView(fleet().toState(), 0));
  const lines = text.split('\n');
  assert.is(lines.length, 2 + 4);
  for (const l of lines) assert.ok(l.length < 100, `row of ${l.length} characters: ${l}`);
  const row = (node: string) => lines.find((l) => l.startsWith(node))!.split(/\s{2,}/);
  assert.equal(row('gpu-rtx'), ['gpu-rtx', '0', 'GeForce RTX 4090', '24.0', '551.86', '2', '1', '7/8']);
  assert.equal(row('gpu-h100'), ['gpu-h100', '0', 'H100 80GB HBM3', '79.6', '550.54.15', '0', '7', 'none: no NVENC']);
  assert.equal(row('gpu-proto'), ['gpu-proto', '0', 'Prototype X1, engineering…', '16', '550.54.15', '1?', '1?', '3/3 assumed']);
  assert.equal(row('gpu-old'), ['gpu-old', '0', 'Tesla T4', '15', '-', '-', '-', '3/3 default']);
  assert.is(gpuTable(nodesView(new Ledger(1, 10_000).toState(), 0)), '');
});

test.run();
