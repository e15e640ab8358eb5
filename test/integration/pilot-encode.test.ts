/**
 * Pilot encodes (node-agent/ffmpeg/probe.ts measurePilot): the job's first frames with its own
 * settings, measured before it is predicted, as a submitter attaches them (coordinator/cli
 * probes.ts). Real ffmpeg; the full encodes they are set against run through the Piscina runner
 * on one core.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseCpuList, validateEncodingSchema, type EncodingSchema } from '../../shared/index.js';
import { measurePilot, pilotFor, ProbeCache } from '../../node-agent/ffmpeg/probe.js';
import { PILOT_FRAMES } from '../../node-agent/ffmpeg/index.js';
import { createEncodeRunner } from '../../node-agent/runner/index.js';
import { attachProbes } from '../../coordinator/cli/probes.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'prescient-pilot-test-'));
const runner = createEncodeRunner({ maxThreads: 1 });
const allowed = [...parseCpuList(/^Cpus_allowed_list:\s*(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1])];
const grant = { core_ids: allowed.slice(0, 1), gpu_ids: [] };
test.after(async () => {
  await runner.close();
  rmSync(dir, { recursive: true, force: true });
});

const schema = (noise: number, crf: number, preset: string, duration_s = 2): EncodingSchema => validateEncodingSchema({
  input: { synthetic: { source: 'testsrc2', noise }, resolution: '320x240', fps: 25, duration_s },
  output: { codec: 'h264', preset, rate_control: { mode: 'crf', crf } },
}, { allowedInputRoots: [dir] });
/** CPU seconds per frame of the whole encode, on the same one core. */
async function fullCpuPerFrame(task_id: string, s: EncodingSchema): Promise<number> {
  const r = await runner.run({ task_id, schema: s, core_ids: grant.core_ids, gpu_ids: [], memory_gb: 1, output_dir: dir, input_roots: [dir] });
  return (r.actual.cpu_cores * r.actual.duration_s) / r.frames!;
}

test('a pilot encodes the first frames and reports their CPU and kilobytes of video', async () => {
  const p = await measurePilot(schema(0, 23, 'veryfast'), grant);
  assert.ok(p, 'a pilot');
  assert.is(p!.frames, PILOT_FRAMES);
  assert.ok(p!.cpu_s > 0 && p!.cpu_s < 10, `cpu_s ${p!.cpu_s}`);
  assert.ok(p!.video_kb !== undefined && p!.video_kb > 0, `video_kb ${p!.video_kb}`);
});

test('a job shorter than the pilot is piloted whole', async () => {
  const p = await measurePilot(schema(0, 23, 'veryfast', 0.2), grant);
  assert.is(p?.frames, 5);
});

test('what the schema cannot say, the pilot measures: noise at CRF 18 costs x264 many times clean bars at CRF 34, in the pilot as in the whole encode', async () => {
  const hard = schema(40, 18, 'slow'), easy = schema(0, 34, 'slow');
  const [ph, pe] = [await measurePilot(hard, grant), await measurePilot(easy, grant)];
  const pilotRatio = (ph!.cpu_s / ph!.frames) / (pe!.cpu_s / pe!.frames);
  const fullRatio = (await fullCpuPerFrame('hard', hard)) / (await fullCpuPerFrame('easy', easy));
  assert.ok(fullRatio > 3, `the whole encodes differ ${fullRatio.toFixed(2)}×`);
  assert.ok(pilotRatio > fullRatio / 2 && pilotRatio < fullRatio * 2, `pilot ratio ${pilotRatio.toFixed(2)} against the encodes' ${fullRatio.toFixed(2)}`);
  assert.ok(ph!.video_kb! > 3 * pe!.video_kb!, `video ${ph!.video_kb} kB against ${pe!.video_kb} kB`);
});

test('a pilot that does not finish in its time gives nothing, not a guess', async () => {
  assert.is(await measurePilot(schema(40, 18, 'veryslow', 10), grant, { timeout_ms: 50 }), undefined);
});

test('pilots are cached by input and output settings: the same job is piloted once, another setting again', async () => {
  const cache = new ProbeCache(path.join(dir, 'cache.json'));
  const first = await pilotFor(schema(0, 23, 'veryfast'), grant, { cache });
  const t0 = Date.now();
  assert.equal(await pilotFor(schema(0, 23, 'veryfast'), grant, { cache }), first);
  assert.ok(Date.now() - t0 < 50, 'the second pilot came from the cache');
  await pilotFor(schema(0, 30, 'veryfast'), grant, { cache });
  assert.is(cache.size, 2);
});

test('a submitter pilots each job of a batch, jobs of the same input and settings once, and keeps them in its probe cache', async () => {
  const file = path.join(dir, 'submit-cache.json');
  const batch = [schema(0, 23, 'veryfast'), schema(0, 23, 'veryfast'), schema(10, 28, 'faster')];
  const said: string[] = [];
  await attachProbes(batch, { cacheFile: file, log: (m) => said.push(m), pilot: true });
  assert.equal(said, []);
  for (const s of batch) assert.ok(s.input.probe?.pilot && s.input.probe.si_mean !== undefined, JSON.stringify(s.input.probe));
  assert.equal(batch[0].input.probe!.pilot, batch[1].input.probe!.pilot, 'the same settings share one pilot');
  // Two probes of the input (noise 0 and 10) and two pilots.
  assert.is(new ProbeCache(file).size, 4);
  const unpiloted = [schema(0, 23, 'veryfast')];
  await attachProbes(unpiloted, { cacheFile: path.join(dir, 'other.json'), log: () => undefined, pilot: false });
  assert.ok(unpiloted[0].input.probe && !unpiloted[0].input.probe.pilot, 'pilot: false probes without one');
});

test.run();
