/**
 * Hostile input against shared/'s validators (issue 17): whatever a payload is, it is accepted or
 * refused with a SchemaValidationError naming a field, and never crashes them. The fuzz mutates
 * valid documents rather than generating noise, so it reaches the deep fields.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import {
  EXTRA_OPTIONS, MAX_ECHO_CHARS, MAX_ISSUES, SchemaValidationError, describeValue,
  validateEncodingSchema, validateInputPath, validateInputProbe, type EncodingSchema, type FieldIssue,
} from '../../shared/index.js';

const ctx = { allowedInputRoots: ['/srv/media'] };
const FUZZ_RUNS = 100_000;

// ---------------------------------------------------------------------------------------------
// Valid documents to start from: between them every field the schema has.

const synthetic = () => ({
  input: {
    synthetic: { source: 'testsrc2', noise: 10 }, resolution: '1280x720', fps: 30, duration_s: 4,
    probe: { by: 'submitter', si_mean: 40, si_max: 80, ti_mean: 10, ti_max: 20, siti_s: 2, pilot: { frames: 12, cpu_s: 0.4, video_kb: 60 } },
  },
  output: {
    codec: 'h264', encoder: 'libx264', preset: 'veryfast', rate_control: { mode: 'crf', crf: 23 },
    resolution: { width: 640, height: 360 }, fps: 25, gop: 50, passes: 1,
    options: { tune: 'film', profile: 'high', pix_fmt: 'yuv420p', level: '4.1', bf: '3', refs: 4 },
  },
  priority: 'premium', submitter: 'alice', deadline: '2030-01-01T00:00:00Z',
  group: { id: 'ladder-1', size: 3, placement: 'together' },
});
const file = () => ({
  input: {
    path: '/srv/media/clip.mp4', codec: 'h264', resolution: '1920x1080', fps: 29.97, bitrate_kbps: 8000, duration_s: 10,
    probe: {
      by: 'node', width: 1920, height: 1080, fps: 29.97, codec: 'h264', pix_fmt: 'yuv420p', duration_s: 60, frames: 1798,
      bitrate_kbps: 8000, audio_streams: 1, size_bytes: 60_000_000, mtime_ms: 1_700_000_000_000,
      si_mean: 50, si_max: 90, ti_mean: 12, ti_max: 30, siti_s: 5, pilot: { frames: 12, cpu_s: 1.5 },
    },
  },
  output: { codec: 'hevc', encoder: 'libx265', preset: 'slow', rate_control: { mode: 'bitrate', bitrate_kbps: 3000 }, passes: 2, options: { tune: 'grain', level: '5' } },
  priority: 'batch', submitter: 'bob@example.com',
});
const actor = () => ({
  kind: 'actor',
  input: { synthetic: { source: 'smptebars' }, resolution: { width: 640, height: 360 }, fps: 25 },
  output: { codec: 'av1', encoder: 'libsvtav1', preset: '8', rate_control: { mode: 'crf', crf: 35 }, options: { pix_fmt: 'yuv420p10le' } },
});
const vp9 = () => ({
  input: { path: '/srv/media/a/b.mkv', fps: '25', duration_s: '3.5' },
  output: { codec: 'vp9', preset: 4, rate_control: { mode: 'bitrate', bitrate_kbps: '900' }, gop: '120' },
  kind: 'task', priority: 'standard',
});
const BASES: unknown[] = [synthetic(), file(), actor(), vp9()];
// The validated (`kind`-tagged) forms, as a schema arrives after travelling between processes.
for (const b of [synthetic(), file(), actor()]) BASES.push(JSON.parse(JSON.stringify(validateEncodingSchema(b, ctx))));

// ---------------------------------------------------------------------------------------------
// What the mutations put in: built once, so 100,000 payloads stay cheap to make.

function nested(depth: number, inner: unknown, asList: boolean): unknown {
  let v = inner;
  for (let i = 0; i < depth; i++) v = asList ? [v] : { a: v };
  return v;
}
const HUGE = 'x'.repeat(600_000);
const DEEP_LIST = nested(100_000, 1, true);
const DEEP_MAP = nested(100_000, 'deep', false);
const DEEP_JSON = JSON.parse('['.repeat(5_000) + ']'.repeat(5_000));
const PROTO_KEYS = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', '__defineGetter__', 'prototype'];
// What JSON.parse makes of a `__proto__` key: an own property, not a prototype.
const PROTO_JSON = JSON.parse('{"__proto__": {"polluted": "yes", "fps": 30}, "constructor": {"prototype": {"polluted": "yes"}}, "toString": "x"}');
const cycle: Record<string, unknown> = { a: 1 }; cycle.self = cycle;

const WEIRD: unknown[] = [
  null, undefined, NaN, Infinity, -Infinity, -0, 0, -1, 1, 2, 1e-320, 5e-324, 1e308, 2 ** 53 + 2, 1.5, 0.0009, 1 / 1001, 241, 99999,
  '', ' ', 'NaN', 'Infinity', '-Infinity', '1e-320', '0x10', '1_000', '\0', '\n', 'a\u0000b', '\ud800', HUGE, `/srv/media/${HUGE}`,
  '/etc/passwd', '/srv/media/../../etc/shadow', 'relative/clip.mp4', '9999x9999', '1x1', '1280x720', '2030-13-45', '+275760-09-13T00:00:00Z',
  '__proto__', 'constructor', 'toString', 'film; rm -rf /',
  true, false, [], [1, 2, 3], [{}], {}, { width: 'a', height: null }, PROTO_JSON, Object.create(null), cycle,
  DEEP_LIST, DEEP_MAP, DEEP_JSON, 10n, Symbol('s'), new Date(NaN), new Date(0), () => 1,
];
/** Plausible values from elsewhere in a schema: right type, wrong place. */
const PLAUSIBLE: unknown[] = [
  'h264', 'hevc', 'libx265', 'h264_nvenc', 'av1_nvenc', 'libaom-av1', 'p4', 'medium', '13', 'crf', 'bitrate', 'synthetic', 'file', 'actor', 'task',
  'testsrc', 'life', 'node', 'submitter', 'spread', 'standard', 'film', 'main10', 'yuv444p', '6.3', '16', '17', 'ab-c_d',
  23, 51, 63, 255, 2, 32, 33, 100, 101, 240, 10_000, 86_400, 86_401, 1_000_000, 400, 600, 64, 65,
  { mode: 'crf', crf: 20 }, { mode: 'bitrate', bitrate_kbps: 1 }, { source: 'testsrc' }, { width: 2, height: 2 }, { by: 'node' },
  { id: 'g', size: 2 }, { tune: 'zerolatency' }, { 'x264-params': 'a=b' },
];
/** Numbers just inside and outside the bounds, and scaled versions of whatever was there. */
const EDGES = [0, -0, 1 / 1001, 1 / 1002, 0.001, 0.000999, 1, 2, 240, 240.0001, 8192, 8193, 86_400, 86_400.5, 1_000_000, 1_000_001, 2 ** 53, 2 ** 53 + 2];
const NEW_KEYS = [...PROTO_KEYS, '', ' ', 'a.b', '0', 'extra', HUGE, 'kind', 'path', 'synthetic', 'fps', 'tune', 'x264-params', 'width', 'mode', 'crf', 'by'];

type Slot = { parent: Record<string, unknown> | unknown[] | null; key: string | number };
type Op = [at: number, what: number, pick: number];
type Plan = { base: number; ops: Op[] } | { noise: unknown };

/** A copy of a JSON-like base; small and plain, so a hand-rolled copy beats structuredClone. */
function clone(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(clone);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) out[k] = clone((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

/** Every place a value sits, walking only what the bases made (never into a planted deep value). */
function slots(root: { doc: unknown }, planted: Set<unknown>): Slot[] {
  const out: Slot[] = [{ parent: root as unknown as Record<string, unknown>, key: 'doc' }];
  const seen = new Set<unknown>();
  const walk = (v: unknown) => {
    if (!v || typeof v !== 'object' || planted.has(v) || seen.has(v)) return;
    seen.add(v);
    const keys = Array.isArray(v) ? v.keys() : Object.keys(v);
    for (const k of keys) {
      out.push({ parent: v as Record<string, unknown>, key: k });
      walk((v as Record<string, unknown>)[k]);
    }
  };
  walk(root.doc);
  return out;
}

/** Sets a key as JSON.parse would: `__proto__` becomes an own property, not the prototype. */
function put(o: Record<string, unknown> | unknown[], k: string | number, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

/** String() and Number() throw on some values (a symbol, a prototype-free mapping, deep nesting). */
function asString(v: unknown): string {
  try { return String(v); } catch { return 'unprintable'; }
}
function asNumber(v: unknown): number {
  try { return Number(v); } catch { return NaN; }
}

function build(plan: Plan): unknown {
  if ('noise' in plan) return plan.noise;
  const root = { doc: clone(BASES[plan.base]) };
  const planted = new Set<unknown>(WEIRD.filter((w) => w && typeof w === 'object'));
  for (const [at, what, pick] of plan.ops) {
    const all = slots(root, planted);
    const { parent, key } = all[at % all.length];
    const p = parent as Record<string, unknown>;
    const cur = p[key as string];
    switch (what) {
      case 0: put(p, key, WEIRD[pick % WEIRD.length]); break;
      case 1: if (parent !== root) delete p[key as string]; break;
      case 2: { // a new key in the mapping here (or in the one holding it)
        const target = cur && typeof cur === 'object' && !planted.has(cur) ? cur as Record<string, unknown> : p;
        const pool = pick % 2 ? WEIRD : PLAUSIBLE;
        put(target, NEW_KEYS[pick % NEW_KEYS.length], pool[(pick >> 1) % pool.length]);
        break;
      }
      case 3: put(p, key, PLAUSIBLE[pick % PLAUSIBLE.length]); break;
      case 4: { // the same value in the wrong shape
        const shapes = [[cur], asString(cur), asNumber(cur), { value: cur }, nested(pick % 50, cur, pick % 3 === 0)];
        put(p, key, shapes[pick % shapes.length]);
        break;
      }
      case 5: { // a number at and around the bounds
        const n = asNumber(cur);
        const near = [n * 1000, -n, n / 1e6, n + 0.5, n - 1, n + 1, n * (1 + Number.EPSILON)];
        const pool = pick % 2 ? EDGES : near;
        put(p, key, pool[(pick >> 1) % pool.length]);
        break;
      }
      case 6: { // a value from elsewhere in the same document
        const other = all[pick % all.length];
        put(p, key, (other.parent as Record<string, unknown>)[other.key as string]);
        break;
      }
      default: { // strings nudged: padded, recased, cut
        const s = asString(cur);
        const nudged = [` ${s} `, s.toUpperCase(), s.slice(1), `${s}\n`, `${s}.0`, s + s];
        put(p, key, nudged[pick % nudged.length]);
      }
    }
  }
  return root.doc;
}

const planArb: fc.Arbitrary<Plan> = fc.oneof(
  { weight: 24, arbitrary: fc.record({ base: fc.nat(BASES.length - 1), ops: fc.array(fc.tuple(fc.nat(), fc.nat(7), fc.nat()), { minLength: 1, maxLength: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ noise: fc.anything({ maxDepth: 3, withNullPrototype: true, withObjectString: true, withBigInt: true, withBoxedValues: true }) }) },
);

// ---------------------------------------------------------------------------------------------
// What every answer must be.

/** A refusal: a SchemaValidationError, each issue naming a field, the whole short enough to store. */
function assertRefusal(e: unknown, payload: unknown): void {
  if (!(e instanceof SchemaValidationError)) {
    throw new Error(`threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)} for ${describeValue(payload)}`);
  }
  assert.ok(e.issues.length > 0 && e.issues.length <= MAX_ISSUES + 1, 'a refusal lists between 1 and MAX_ISSUES + 1 issues');
  for (const i of e.issues) {
    if (typeof i.field !== 'string' || i.field.length === 0) throw new Error(`an issue names no field: ${JSON.stringify(i)}`);
    if (i.field.length > 200 || i.reason.length > 400) throw new Error(`an issue is too long to store: ${i.field.slice(0, 100)}`);
  }
  assert.ok(e.message.length < 40_000, 'the message stays short enough to store');
}

/** Every number in an accepted schema is finite (so it survives JSON) and within ffmpeg's ranges. */
function assertSane(s: EncodingSchema): void {
  const again = validateEncodingSchema(JSON.parse(JSON.stringify(s)), ctx);
  assert.equal(again, s, 'an accepted schema validates again to itself');
  const fps = [s.input.fps, s.output.fps, s.input.probe?.fps].filter((f): f is number => f !== undefined);
  for (const f of fps) if (!(f >= 1 / 1001 && f <= 240)) throw new Error(`fps ${f} was accepted`);
  for (const [k, v] of Object.entries(s.output.options)) {
    if (!Object.hasOwn(EXTRA_OPTIONS, k) || typeof v !== 'string') throw new Error(`option ${k} was accepted`);
  }
}

/** Runs every validator on `payload`; whether validateEncodingSchema accepted it. */
function judge(payload: unknown): boolean {
  let accepted: EncodingSchema | undefined;
  try { accepted = validateEncodingSchema(payload, ctx); } catch (e) { assertRefusal(e, payload); }
  if (accepted) assertSane(accepted);
  // The other validators of untrusted JSON: a node's probe reply and an input path.
  const input = payload && typeof payload === 'object' && Object.hasOwn(payload, 'input') ? (payload as { input: unknown }).input : payload;
  const own = (k: string) => input && typeof input === 'object' && Object.hasOwn(input, k) ? (input as Record<string, unknown>)[k] : input;
  try { validateInputProbe(own('probe')); } catch (e) { assertRefusal(e, payload); }
  try { validateInputPath(own('path'), ctx); } catch (e) { assertRefusal(e, payload); }
  return accepted !== undefined;
}

// ---------------------------------------------------------------------------------------------

const issuesOf = (doc: unknown): FieldIssue[] => {
  try {
    validateEncodingSchema(doc, ctx);
  } catch (e) {
    assertRefusal(e, doc);
    return (e as SchemaValidationError).issues;
  }
  assert.unreachable('document was accepted');
  return [];
};
const fieldsOf = (doc: unknown) => issuesOf(doc).map((i) => i.field);
const withPath = (path: string[], v: unknown, base: () => unknown = synthetic) => {
  const d = base() as Record<string, unknown>;
  let o = d;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string, unknown>;
  put(o, path[path.length - 1], v);
  return d;
};

test('every base document the fuzz starts from is valid', () => {
  for (const b of BASES) validateEncodingSchema(b, ctx);
});

test('option names __proto__, constructor and toString are refused naming the option, not crashing', () => {
  for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
    const d = withPath(['output', 'options'], JSON.parse(`{"${name}": "film"}`));
    const i = issuesOf(d);
    assert.equal(i.map((x) => x.field), [`output.options.${name}`]);
    assert.match(i[0].reason, /not in the allow-list/);
  }
});

test('a __proto__ key anywhere in a document is an unknown field and pollutes nothing', () => {
  const where = [[], ['input'], ['input', 'synthetic'], ['input', 'probe'], ['output'], ['output', 'rate_control'], ['group']];
  for (const at of where) {
    const d = withPath([...at, '__proto__'], { polluted: 'yes', fps: 30, path: '/srv/media/x.mp4' });
    assert.equal(fieldsOf(d), [[...at, '__proto__'].join('.')]);
  }
  // Inside a resolution mapping, a key on the prototype is not a width: it is an unknown key.
  assert.equal(fieldsOf(withPath(['output', 'resolution'], JSON.parse('{"__proto__": {"width": 640, "height": 360}}'))).sort(), ['output.resolution.__proto__', 'output.resolution.height', 'output.resolution.width']);
  assert.is(({} as Record<string, unknown>).polluted, undefined);
});

test('a list, a string, a number or null where a mapping is expected is refused naming that field', () => {
  const mappings = [['input'], ['input', 'synthetic'], ['input', 'probe'], ['output'], ['output', 'rate_control'], ['output', 'options'], ['group']];
  for (const at of mappings) {
    for (const v of [[], [1, 2], 'text', 7, true, DEEP_LIST]) {
      const i = issuesOf(withPath(at, v));
      assert.ok(i.some((x) => x.field === at.join('.')), `${at.join('.')} = ${describeValue(v)}: ${JSON.stringify(i)}`);
    }
  }
  assert.equal(fieldsOf([synthetic()]), ['(document)']);
  assert.equal(fieldsOf(null), ['(document)']);
});

test('a value nested 100,000 levels deep is refused with a short message naming its field', () => {
  for (const deep of [DEEP_LIST, DEEP_MAP]) {
    const i = issuesOf(withPath(['input', 'fps'], deep));
    assert.equal(i.map((x) => x.field), ['input.fps']);
    assert.ok(i[0].reason.length < 200, i[0].reason);
  }
});

test('an fps below 1/1001 is refused for input, output and probe, and 1/1001 itself is accepted', () => {
  for (const at of [['input', 'fps'], ['output', 'fps'], ['input', 'probe', 'fps']]) {
    const base = at.includes('probe') ? file : synthetic;
    for (const bad of [1e-320, 5e-324, 0.0009, 0, '1e-320']) {
      const i = issuesOf(withPath(at, bad, base));
      assert.equal(i.map((x) => x.field), [at.join('.')]);
      assert.match(i[0].reason, /at least 1\/1001/);
    }
    assert.equal(fieldsOf(withPath(at, 240.5, base)), [at.join('.')]);
    validateEncodingSchema(withPath(at, 1 / 1001, base), ctx);
  }
});

test('numbers out of the ranges ffmpeg accepts are refused, each naming its field', () => {
  const cases: [string[], unknown, () => unknown][] = [
    [['input', 'duration_s'], 1e-7, synthetic], [['input', 'duration_s'], 86_401, synthetic],
    [['input', 'duration_s'], 1e-320, file], [['input', 'probe', 'duration_s'], 1e-9, file],
    [['input', 'bitrate_kbps'], 1e-320, file], [['input', 'probe', 'bitrate_kbps'], 1e-320, file],
    [['input', 'probe', 'siti_s'], 1e-320, file], [['input', 'probe', 'size_bytes'], 2 ** 53 + 2, file],
    [['output', 'rate_control', 'bitrate_kbps'], 0.5, file], [['output', 'rate_control', 'bitrate_kbps'], 1_000_001, file],
    [['output', 'rate_control', 'crf'], 52, synthetic], [['output', 'rate_control', 'crf'], 22.5, synthetic],
    [['output', 'gop'], 0, synthetic], [['output', 'gop'], 10_001, synthetic],
    [['input', 'synthetic', 'noise'], 101, synthetic], [['input', 'synthetic', 'noise'], -1, synthetic],
    [['output', 'resolution'], { width: 8194, height: 360 }, synthetic], [['input', 'resolution'], '0x720', synthetic],
    [['group', 'size'], 33, synthetic], [['group', 'size'], 1, synthetic],
    [['deadline'], '+275760-09-13T00:00:00Z', synthetic], [['deadline'], '1969-12-31T23:59:59Z', synthetic],
  ];
  for (const [at, v, base] of cases) {
    const f = fieldsOf(withPath(at, v, base));
    assert.ok(f.length === 1 && f[0].startsWith(at.join('.')), `${at.join('.')} = ${String(v)}: ${f}`);
  }
  // The bounds themselves are accepted.
  validateEncodingSchema(withPath(['output', 'rate_control', 'bitrate_kbps'], 1, file), ctx);
  validateEncodingSchema(withPath(['input', 'duration_s'], 0.001, synthetic), ctx);
  validateEncodingSchema(withPath(['deadline'], '9999-12-31T23:59:59Z', synthetic), ctx);
});

test('NaN, Infinity and -Infinity are named as such, not as null', () => {
  for (const [v, shown] of [[NaN, 'NaN'], [Infinity, 'Infinity'], [-Infinity, '-Infinity']] as const) {
    for (const at of [['input', 'fps'], ['output', 'gop'], ['output', 'rate_control', 'crf'], ['group', 'size']]) {
      const i = issuesOf(withPath(at, v));
      assert.equal(i.map((x) => x.field), [at.join('.')]);
      assert.is(i[0].reason, `must be a number, got ${shown}`);
    }
  }
  assert.is(describeValue([NaN, { a: -Infinity }]), '[NaN,{"a":-Infinity}]');
});

test('a 600 KB value is echoed in a refusal in at most about 80 characters', () => {
  const huge = [
    withPath(['output', 'codec'], HUGE), withPath(['input', 'resolution'], HUGE), withPath(['output', 'options', 'tune'], HUGE),
    withPath(['input', 'fps'], HUGE), withPath(['deadline'], HUGE), withPath(['input', 'kind'], HUGE),
    withPath(['input'], { path: HUGE }), withPath(['input'], { path: `/elsewhere/${HUGE}` }), withPath(['input', 'probe', 'codec'], HUGE, file),
    withPath([HUGE], 1), withPath(['output', 'options', HUGE], 'film'),
  ];
  for (const d of huge) {
    const e = (() => { try { validateEncodingSchema(d, ctx); } catch (err) { return err as SchemaValidationError; } assert.unreachable(); })()!;
    assertRefusal(e, d);
    assert.ok(e.message.length < 400, `${e.message.length} characters: ${e.message.slice(0, 300)}`);
    assert.ok(e.message.includes('…'), 'the cut is marked with an ellipsis');
  }
});

test('a document with a million unknown keys lists 50 issues and counts the rest', () => {
  const d = synthetic() as Record<string, unknown>;
  for (let k = 0; k < 1_000_000; k++) d[`k${k}`] = k;
  const i = issuesOf(d);
  assert.is(i.length, MAX_ISSUES + 1);
  assert.equal(i[MAX_ISSUES], { field: '(document)', reason: '999950 more issue(s) not listed' });
});

test('an empty or odd key is refused with a field path that still says where it is', () => {
  assert.equal(fieldsOf(withPath([''], 1)), ['(document)[""]']);
  assert.equal(fieldsOf(withPath(['output', 'options', 'a.b'], 'x')), ['output.options["a.b"]']);
  assert.equal(fieldsOf(withPath(['input', ' '], 1)), ['input[" "]']);
});

test('a refusal built elsewhere with an empty field or a huge reason still names a field and stays short', () => {
  const e = new SchemaValidationError([{ field: '', reason: HUGE }, { field: HUGE, reason: '' }]);
  assert.equal(e.issues.map((i) => i.field.slice(0, 10)), ['(document)', 'xxxxxxxxxx']);
  assert.ok(e.message.length < 1_000);
  assert.equal(new SchemaValidationError([]).issues, [{ field: '(document)', reason: 'is invalid' }]);
});

test('describeValue never throws and stays short, whatever it is given', () => {
  for (const v of [...WEIRD, ...PLAUSIBLE]) assert.ok(describeValue(v).length <= MAX_ECHO_CHARS, String(typeof v));
});

test(`${FUZZ_RUNS.toLocaleString('en')} hostile payloads are each accepted or refused naming a field, never thrown at`, () => {
  const started = Date.now();
  let refused = 0;
  fc.assert(fc.property(planArb, (plan) => {
    if (!judge(build(plan))) refused++;
  }), { numRuns: FUZZ_RUNS });
  assert.is(({} as Record<string, unknown>).polluted, undefined, 'no payload polluted Object.prototype');
  // Near-valid payloads: some must get through, or the fuzz never reached the deep fields.
  assert.ok(refused < FUZZ_RUNS * 0.98 && refused > FUZZ_RUNS * 0.5, `${refused} of ${FUZZ_RUNS} refused`);
  if (process.env.FUZZ_VERBOSE) console.log(`fuzz: ${FUZZ_RUNS} payloads, ${refused} refused, ${Date.now() - started} ms`);
});

test.run();
