import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, validateEncodingSchema } from '../../shared/index.js';
import { compileEncode } from '../../node-agent/ffmpeg/index.js';
import {
  dataLimitBytes, ffmpegGpuIds, gpuView, memoryLimitBytes, parseResourceList, throttleBytesPerSecond, type EnforcementPlan,
} from '../../node-agent/enforce/index.js';
import {
  allocationRefused, cgroupName, deviceNumbers, formatGb, hierarchyOf, parseCgroupMounts, parseOomKills, parseProcCgroup, throttleLine,
} from '../../node-agent/enforce/limits.js';

const MIB = 2 ** 20;
const GIB = 2 ** 30;

test('a memory reservation becomes a cgroup limit of the reservation plus 32 MiB of start-up headroom, in whole pages', () => {
  assert.is(memoryLimitBytes(1), GIB + 32 * MIB);
  assert.is(memoryLimitBytes(0.5), 512 * MIB + 32 * MIB);
  const small = memoryLimitBytes(0.04);
  assert.is(small % 4096, 0);
  assert.ok(small >= 0.04 * GIB + 32 * MIB && small < 0.04 * GIB + 32 * MIB + 4096, `${small}`);
});

test('the RLIMIT_DATA backstop is four times the reservation plus the headroom', () => {
  assert.is(dataLimitBytes(1), 4 * GIB + 32 * MIB);
  assert.ok(dataLimitBytes(0.25) > memoryLimitBytes(0.25) * 3);
});

test('a reserved bandwidth in Mbit/s is throttled as bytes per second, never zero', () => {
  assert.is(throttleBytesPerSecond(100), 12_500_000);
  assert.is(throttleBytesPerSecond(16), 2_000_000);
  assert.is(throttleBytesPerSecond(0.000001), 1);
});

test('a throttle names the disk as major:minor, one rate per v1 file and both directions in one v2 io.max line', () => {
  assert.is(throttleLine(1, { major: 254, minor: 0 }, 2_000_000), '254:0 2000000');
  assert.is(throttleLine(2, { major: 8, minor: 16 }, 2_000_000), '8:16 rbps=2000000 wbps=2000000');
});

test('a dev_t splits into major and minor, including minors above 255 and majors above 4095', () => {
  // glibc's makedev: minor's low byte in bits 0-7, major's low 12 bits in 8-19, minor's rest from bit 20, major's rest from bit 32.
  const makedev = (major: bigint, minor: bigint) => ((major & 0xfffff000n) << 32n) | ((major & 0xfffn) << 8n) | ((minor & ~0xffn) << 12n) | (minor & 0xffn);
  assert.equal(deviceNumbers(makedev(254n, 0n)), { major: 254, minor: 0 });
  assert.equal(deviceNumbers(makedev(259n, 65_537n)), { major: 259, minor: 65_537 });
  assert.equal(deviceNumbers(makedev(5000n, 3n)), { major: 5000, minor: 3 });
});

const hideGpus: EnforcementPlan = {
  node_id: 'n1', cpu: { kind: 'affinity' }, memory: { kind: 'none', why: 'test' }, gpu: { kind: 'visible-devices' }, bandwidth: { kind: 'none', why: 'test' }, network: { kind: 'none', why: 'test' },
};
const showGpus: EnforcementPlan = { ...hideGpus, gpu: { kind: 'none', why: 'turned off' } };

test('an encode reserved GPUs 3 and 1 sees exactly those, in nvidia-smi\'s numbering', () => {
  assert.equal(gpuView([3, 1]).env, { CUDA_VISIBLE_DEVICES: '3,1', CUDA_DEVICE_ORDER: 'PCI_BUS_ID' });
  assert.equal(gpuView([3, 1]).ffmpeg_gpu_ids, [0, 1]);
});

test('an encode with no GPU reserved sees none', () => {
  assert.is(gpuView([]).env.CUDA_VISIBLE_DEVICES, '');
});

test('with the GPUs hidden, nvenc is told -gpu 0 (the first visible one); without, the node index', () => {
  const schema = validateEncodingSchema({
    input: { synthetic: { source: 'testsrc2' }, resolution: '320x240', fps: 25, duration_s: 1 },
    output: { codec: 'h264', encoder: 'h264_nvenc', rate_control: { mode: 'crf', crf: 23 } },
  }, { allowedInputRoots: [] });
  const gpuArg = (plan: EnforcementPlan) => {
    const [argv] = compileEncode(schema, { core_ids: [0], gpu_ids: ffmpegGpuIds(plan, [3]) }, { task_id: 't', output_dir: '/out', passlog_prefix: '/tmp/p' }).passes;
    return argv[argv.indexOf('-gpu') + 1];
  };
  assert.is(gpuArg(hideGpus), '0');
  assert.is(gpuArg(showGpus), '3');
  assert.equal(ffmpegGpuIds(undefined, [2]), [2]);
});

test('allocation failures under RLIMIT_DATA are recognised in what x264, SVT-AV1 and libvpx print, other failures are not', () => {
  assert.ok(allocationRefused('x264 [error]: malloc of size 5353683 failed'));
  assert.ok(allocationRefused('SvtMalloc[fatal]: allocate memory failed, at ./Source/Lib/Encoder/Codec/EbPictureControlSet.c:1402'));
  assert.ok(allocationRefused('[libvpx-vp9 @ 0x55c1] Failed to initialize encoder: Memory allocation error'));
  assert.ok(allocationRefused('Error while filtering: Cannot allocate memory'));
  assert.not.ok(allocationRefused('/media/missing.mp4: No such file or directory'));
});

const HYBRID = [
  '22 27 0:21 / /proc rw,relatime - proc proc rw',
  '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
  '32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
  '35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
  '38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio',
  '40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd',
  '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
].join('\n');
const PURE_V2 = '30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot';

test('on a hybrid host memory and blkio are found in their v1 hierarchies even where cgroup2 is mounted too', () => {
  const m = parseCgroupMounts(HYBRID);
  assert.is(m.v1.memory, '/sys/fs/cgroup/memory');
  assert.is(m.v1.blkio, '/sys/fs/cgroup/blkio');
  assert.is(m.v1['name=systemd'], undefined);
  assert.is(m.v2, '/sys/fs/cgroup/unified');
  assert.equal(hierarchyOf(m, 'memory', []), { version: 1, mount: '/sys/fs/cgroup/memory' });
});

test('on a cgroup2-only host memory and io come from the v2 root, and only when it offers them', () => {
  const m = parseCgroupMounts(PURE_V2);
  assert.equal(m.v1, {});
  assert.equal(hierarchyOf(m, 'memory', ['cpu', 'io', 'memory', 'pids']), { version: 2, mount: '/sys/fs/cgroup' });
  assert.equal(hierarchyOf(m, 'blkio', ['cpu', 'io', 'memory']), { version: 2, mount: '/sys/fs/cgroup' });
  assert.is(hierarchyOf(m, 'memory', ['cpu', 'pids']), undefined);
});

test('a bind mount of a sub-cgroup is not taken for the hierarchy, and escaped mount points are decoded', () => {
  const m = parseCgroupMounts([
    '50 31 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory',
    '51 31 0:35 / /mnt/cg\\040blk rw - cgroup cgroup rw,blkio',
  ].join('\n'));
  assert.is(m.v1.memory, undefined);
  assert.is(m.v1.blkio, '/mnt/cg blk');
});

test('a /proc cgroup file gives each v1 controller its path and the v2 path under the empty name', () => {
  const own = parseProcCgroup('9:name=systemd:/\n4:memory:/process_api/443f\n2:cpu,cpuacct:/a\n0::/system.slice/x.service\n');
  assert.is(own.get('memory'), '/process_api/443f');
  assert.is(own.get('cpuacct'), '/a');
  assert.is(own.get(''), '/system.slice/x.service');
});

test('the OOM-kill counter is read from v1 memory.oom_control and v2 memory.events, and is absent on old kernels', () => {
  assert.is(parseOomKills('oom_kill_disable 0\nunder_oom 0\noom_kill 2\n'), 2);
  assert.is(parseOomKills('low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n'), 1);
  assert.is(parseOomKills('oom_kill_disable 0\nunder_oom 0\n'), undefined);
});

test('--accounted-only takes a comma-separated list of resources and refuses anything else naming the flag', () => {
  assert.equal(parseResourceList('bandwidth, memory'), ['memory', 'bandwidth']);
  assert.equal(parseResourceList(''), []);
  assert.throws(() => parseResourceList('memory,disk'), (e: unknown) => e instanceof ConfigError && e.setting === '--accounted-only' && /disk is not a resource/.test(e.message));
});

test('ids become cgroup directory names without path syntax', () => {
  assert.is(cgroupName('node-1.example'), 'node-1.example');
  assert.is(cgroupName('../etc'), '.._etc');
  assert.is(cgroupName('a/b c'), 'a_b_c');
  assert.is(cgroupName('..'), '_');
});

test('reserved gigabytes are printed to three significant digits', () => {
  assert.is(formatGb(0.04), '0.04');
  assert.is(formatGb(1.5), '1.5');
  assert.is(formatGb(0.0390625), '0.0391');
  assert.is(formatGb(12), '12');
});

test.run();
