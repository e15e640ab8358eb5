import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseCpuList } from '../../shared/index.js';
import {
  allocatedBetween, coreBusyPercent, kbField, mergeUsage, netSince, parseCpuTimes, parseGpuQuery, parseNetDev, parsePidStat, procField,
  strictClock, UsageTally,
} from '../../node-agent/sampling/index.js';

// Canned text as Linux 6.x writes it.
const STAT = '4242 (x264 (pool) 1) S 4200 4242 21605 0 -1 4194560 2675 0 0 0 731 44 0 0 20 0 9 0 378043 412123136 27093 '
  + '18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0 0 0 0 0 0 0 0 0';
const STATUS = 'Name:\tffmpeg\nState:\tS (sleeping)\nVmPeak:\t  402460 kB\nVmHWM:\t  120312 kB\nVmRSS:\t  108372 kB\n'
  + 'Threads:\t9\nCpus_allowed:\t0c\nCpus_allowed_list:\t2-3\nMems_allowed_list:\t0\n';
const IO = 'rchar: 5284091\nwchar: 1048576\nsyscr: 310\nsyscw: 62\nread_bytes: 4096\nwrite_bytes: 1052672\ncancelled_write_bytes: 8192\n';
const PROC_STAT = (cpu0: number[], cpu1: number[]) => [
  'cpu  114841 1529 22561 516825 950 0 1913 302 0 0',
  `cpu0 ${cpu0.join(' ')} 0 0`,
  `cpu1 ${cpu1.join(' ')} 0 0`,
  'intr 3859262 0 9 0 0 0 0 0',
  'ctxt 8036114',
].join('\n');
const NET_DEV = (eth0: [number, number], extra = '') => `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 8671396   62411    0    0    0     0          0         0  8671396   62411    0    0    0     0       0          0
  eth0: ${eth0[0]}   16989    0    0    0     0          0         0  ${eth0[1]}   11944    0    0    0     0       0          0
${extra}`;

test('a stat line is read past a command name holding spaces and parentheses', () => {
  assert.equal(parsePidStat(STAT), { state: 'S', ppid: 4200, cpu_ticks: 775, starttime: 378043, processor: 3 });
});

test('status and io fields are found at line starts, so write_bytes is not cancelled_write_bytes', () => {
  assert.is(kbField(STATUS, 'VmRSS'), 108372);
  assert.is(kbField(STATUS, 'VmHWM'), 120312);
  assert.is(kbField(STATUS, 'VmSwap'), 0);
  assert.is(procField(STATUS, 'Name'), 'ffmpeg');
  assert.equal(parseCpuList(procField(STATUS, 'Cpus_allowed_list')!), [2, 3]);
  assert.is(procField(IO, 'write_bytes'), '1052672');
  assert.is(procField(IO, 'rchar'), '5284091');
  assert.is(procField(IO, 'nope'), undefined);
});

test('per-core busy share counts iowait as idle and leaves out cores /proc/stat does not list', () => {
  const before = parseCpuTimes(PROC_STAT([100, 0, 100, 700, 100, 0, 0, 0], [0, 0, 0, 1000, 0, 0, 0, 0]));
  const after = parseCpuTimes(PROC_STAT([175, 0, 125, 750, 150, 0, 0, 0], [0, 0, 0, 1200, 0, 0, 0, 0]));
  assert.equal([...before.keys()], [0, 1]);
  assert.equal(coreBusyPercent(before, after, [0, 1, 7]), { 0: 50, 1: 0 });
});

test('network bytes since the start leave out lo, count a new interface from zero and a reset one as nothing', () => {
  const base = parseNetDev(NET_DEV([1000, 500], '  eth1: 9000 1 0 0 0 0 0 0 9000 1 0 0 0 0 0 0'));
  assert.equal([...base.keys()], ['eth0', 'eth1']);
  const now = parseNetDev(NET_DEV([4000, 700], '  eth1: 10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n  veth9: 50 1 0 0 0 0 0 0 60 1 0 0 0 0 0 0'));
  assert.equal(netSince(base, now), { rx: 3000 + 50, tx: 200 + 60 });
});

test('nvidia-smi query CSV becomes GPU samples with memory in GB and unsupported readings as NaN', () => {
  const csv = '0, 37, 2048, 2, 41\n1, [N/A], 512, 0, [Not Supported]\n[N/A], 1, 1, 1, 1\n\n';
  const [a, b, ...rest] = parseGpuQuery(csv);
  assert.equal(a, { gpu_id: 0, util_percent: 37, memory_used_gb: 2, encoder_sessions: 2, encoder_util_percent: 41 });
  assert.is(b.gpu_id, 1);
  assert.ok(Number.isNaN(b.util_percent) && Number.isNaN(b.encoder_util_percent));
  assert.is(b.memory_used_gb, 0.5);
  assert.equal(rest, []);
  assert.equal(parseGpuQuery(''), []);
});

test('pids handed out since the last look are found across the wrap at pid_max', () => {
  assert.ok(allocatedBetween(120, 100, 200));
  assert.not.ok(allocatedBetween(100, 100, 200));
  assert.not.ok(allocatedBetween(50, 100, 200));
  assert.ok(allocatedBetween(32000, 30000, 300));
  assert.ok(allocatedBetween(12, 30000, 300));
  assert.not.ok(allocatedBetween(5000, 30000, 300));
  assert.ok(allocatedBetween(5000, 30000, undefined), 'without ns_last_pid every pid is a candidate');
});

test('a frozen wall clock still stamps every sample of a job with a later millisecond', () => {
  const clock = strictClock(() => 1_000);
  assert.equal([clock(), clock(), clock()], [1_000, 1_001, 1_002]);
  const real = strictClock();
  const a = real(), b = real();
  assert.ok(b > a);
});

const sample = (cpu: number, rss: number, bw: number, on = true, util?: number) => ({
  cpu_cores: cpu, peak_rss_gb: rss, bandwidth_mbps: bw, on_reserved_cores: on,
  gpus: util === undefined ? [] : [{ gpu_id: 0, util_percent: util, memory_used_gb: 1, encoder_sessions: 1, encoder_util_percent: 10 }],
});

test('a usage summary has sample means and peaks, and a memory peak measured elsewhere counts too', () => {
  const t = new UsageTally();
  t.add(sample(1, 0.1, 10));
  t.add(sample(2, 0.3, 30));
  assert.equal(t.summary(), {
    samples: 2, cpu_cores_mean: 1.5, cpu_cores_peak: 2, memory_gb_peak: 0.3, bandwidth_mbps_mean: 20, bandwidth_mbps_peak: 30, stayed_on_cores: true,
  });
  assert.is(t.summary(0.5).memory_gb_peak, 0.5);
});

test('a run without samples summarises to zeros, and one thread off the cores spoils stayed_on_cores', () => {
  const t = new UsageTally();
  assert.equal(t.summary(), {
    samples: 0, cpu_cores_mean: 0, cpu_cores_peak: 0, memory_gb_peak: 0, bandwidth_mbps_mean: 0, bandwidth_mbps_peak: 0, stayed_on_cores: true,
  });
  t.noteCores(false);
  t.add(sample(1, 0.1, 1, true));
  assert.is(t.summary().stayed_on_cores, false);
});

test('GPU utilisation is averaged over the samples that had a reading, and left out when none had', () => {
  const t = new UsageTally();
  t.add(sample(1, 0.1, 1, true, 40));
  t.add(sample(1, 0.1, 1, true, NaN));
  t.add(sample(1, 0.1, 1, true, 60));
  t.add(sample(1, 0.1, 1));
  assert.is(t.summary().gpu_percent_mean, 50);
});

test('the passes of an encode merge into means weighted by their samples and the highest peaks', () => {
  const one = new UsageTally(), two = new UsageTally();
  one.add(sample(1, 0.2, 10));
  two.add(sample(2, 0.1, 40, false));
  two.add(sample(2, 0.1, 40));
  two.add(sample(2, 0.1, 40));
  const merged = mergeUsage([one.summary(), two.summary()]);
  assert.equal(merged, {
    samples: 4, cpu_cores_mean: 1.75, cpu_cores_peak: 2, memory_gb_peak: 0.2, bandwidth_mbps_mean: 32.5, bandwidth_mbps_peak: 40, stayed_on_cores: false,
  });
  assert.equal(mergeUsage([]), new UsageTally().summary());
});

test.run();
