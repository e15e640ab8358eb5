import { test } from 'uvu';
import * as assert from 'uvu/assert';
import os from 'node:os';
import { detectHardware, parseCpuList } from '../../node-agent/index.js';
import { allowedCores, parseNvidiaSmiGpus } from '../../node-agent/hardware.js';

test('a CPU list with ranges and singles is expanded and sorted', () => {
  assert.equal(parseCpuList('8,0-2,5'), [0, 1, 2, 5, 8]);
});

test('a malformed or backwards CPU list is refused naming the setting', () => {
  assert.throws(() => parseCpuList('0-', '--cores'), /--cores: not a CPU list/);
  assert.throws(() => parseCpuList('3-1', '--cores'), /--cores: range 3-1 runs backwards/);
});

test('nvidia-smi CSV lines become GPUs with memory in GB, and junk lines are dropped', () => {
  const out = '0, GPU-0, 00000000:18:00.0, 550.54.15, 81559, NVIDIA H100 80GB HBM3\n1, GPU-1, 00000000:2A:00.0, 550.54.15, 23034, NVIDIA L4\n[N/A], broken, [N/A]\n';
  assert.equal(parseNvidiaSmiGpus(out).map((g) => ({ id: g.id, name: g.name, memory_gb: g.memory_gb })), [
    { id: 0, name: 'NVIDIA H100 80GB HBM3', memory_gb: 81559 / 1024 },
    { id: 1, name: 'NVIDIA L4', memory_gb: 23034 / 1024 },
  ]);
});

test('the detected hardware is the real machine narrowed to the grant', async () => {
  const first = allowedCores()[0];
  const hw = await detectHardware({ cores: String(first), memoryGb: 1 });
  assert.equal(hw.core_ids, [first]);
  assert.is(hw.memory_gb, 1);
  assert.ok(hw.cpu_model.length > 0);
});

test('a grant beyond the machine is refused', async () => {
  await detectHardware({ cores: '4096' }).then(() => assert.unreachable('accepted'), (e: Error) => assert.match(e.message, /--cores: cores 4096 are not available here/));
  await detectHardware({ memoryGb: os.totalmem() / 1024 ** 3 + 1 }).then(() => assert.unreachable('accepted'), (e: Error) => assert.match(e.message, /--memory-gb: must be between 0 and/));
});

test.run();
