/** The local ffmpeg, asked for real: what it can do, and how complex an input looks to it. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validateEncodingSchema } from '../../shared/index.js';
import { ffmpegCapabilities } from '../../node-agent/ffmpeg/capabilities.js';
import { measureComplexity } from '../../node-agent/ffmpeg/probe.js';
import { allowedCores } from '../../node-agent/hardware.js';

const grant = { core_ids: allowedCores().slice(0, 1), gpu_ids: [] };
const synthetic = (source: string, noise: number) => validateEncodingSchema({
  input: { synthetic: { source, noise }, resolution: '320x240', fps: 25, duration_s: 5 },
  output: { codec: 'h264', rate_control: { mode: 'crf', crf: 23 } },
}, { allowedInputRoots: [] });

test('the local ffmpeg reports its encoders and filters, and VMAF only if libvmaf is really built in', async () => {
  const caps = await ffmpegCapabilities();
  for (const e of ['libx264', 'libx265', 'libvpx-vp9', 'libsvtav1']) assert.ok(caps.encoders.has(e), e);
  for (const f of ['psnr', 'ssim', 'siti']) assert.ok(caps.filters.has(f), f);
  assert.is(caps.vmaf, caps.filters.has('libvmaf'));
  assert.match(caps.version, /^\d|^n?\d/);
});

test('a noisy moving source measures as more complex than flat colour bars', async () => {
  const bars = await measureComplexity(synthetic('smptebars', 0), grant);
  const noisy = await measureComplexity(synthetic('testsrc2', 60), grant);
  assert.ok(bars && noisy, 'both probes produced a summary');
  assert.ok(noisy!.ti_mean > bars!.ti_mean, `TI ${noisy!.ti_mean} vs ${bars!.ti_mean}`);
  assert.ok(noisy!.si_mean > bars!.si_mean, `SI ${noisy!.si_mean} vs ${bars!.si_mean}`);
  assert.is(noisy!.probe_s, 0.48, 'the first 12 frames at 25 fps');
});

test('an input that cannot be read gives no complexity rather than a guess', async () => {
  const missing = validateEncodingSchema({ input: { path: '/tmp/prescient-no-such-file.mp4' }, output: { codec: 'h264', rate_control: { mode: 'crf', crf: 23 } } }, { allowedInputRoots: ['/tmp'] });
  assert.is(await measureComplexity(missing, grant), undefined);
});

test.run();
