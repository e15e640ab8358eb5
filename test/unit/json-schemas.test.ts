/**
 * One source per document (issue 20): the valibot schema that validates a job, the burst
 * configuration or a training-log mapping also gives its JSON Schema, which `prescient schema`
 * prints and the repo ships for editors. A real JSON Schema validator (Ajv, draft-07) checks here
 * that each JSON Schema and its validator agree on the documents people write.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject } from 'ajv';
import YAML from 'yaml';
import { ConfigError, SchemaValidationError, encodingSchemaJsonSchema, validateEncodingSchema } from '../../shared/index.js';
import { burstConfigJsonSchema, validateBurstConfig } from '../../coordinator/burst/index.js';
import { MappingError, mappingJsonSchema, parseMapping } from '../../models/data/mapping.js';

const ROOT = new URL('../../../', import.meta.url);
const CLI = fileURLToPath(new URL('../../coordinator/cli/main.js', import.meta.url));
const ctx = { allowedInputRoots: ['/srv/media'], allowedOutputRoots: ['/srv/out'] };
const generated = encodingSchemaJsonSchema();
// The two formats the schemas use, as Date and URL read them (ajv-formats would be one more package for two).
const ajv = new Ajv({ strict: true, allErrors: true, formats: { 'date-time': (s: string) => !Number.isNaN(Date.parse(s)), uri: (s: string) => URL.canParse(s) } });
const check = ajv.compile(generated);

/** Why the JSON Schema refuses `doc` (empty: it accepts it). */
const jsonSchemaErrors = (doc: unknown): ErrorObject[] => (check(doc) ? [] : [...(check.errors ?? [])]);
/** The fields the validator refuses in `doc` (empty: it accepts it). */
function validatorFields(doc: unknown): string[] {
  try {
    validateEncodingSchema(doc, ctx);
    return [];
  } catch (e) {
    if (!(e instanceof SchemaValidationError)) throw e;
    return e.issues.map((i) => i.field);
  }
}

const good = () => ({
  input: { synthetic: { source: 'testsrc2', noise: 10, audio: true }, resolution: '1280x720', fps: 30, duration_s: 4 },
  output: {
    codec: 'h264', encoder: 'libx264', preset: 'veryfast', rate_control: { mode: 'crf', crf: 23 }, resolution: { width: 640, height: 360 },
    gop: 60, options: { tune: 'film', bf: '3' }, path: '/srv/out/{group}/{rendition}.m3u8', rendition: '360p', audio: { mode: 'aac', bitrate_kbps: 96 },
  },
  priority: 'premium', submitter: 'alice', deadline: '2030-01-01T00:00:00Z', group: { id: 'ladder-1', size: 3 },
});
const file = () => ({
  input: { path: '/srv/media/clip.mp4', codec: 'h264', fps: 25, probe: { by: 'submitter', width: 1919, height: 1080, fps: 25, codec: 'h264', duration_s: 10 } },
  output: { codec: 'vp9', preset: 4, rate_control: { mode: 'bitrate', bitrate_kbps: 900 }, audio: 'opus' },
  kind: 'task',
});

const GENERATED = { job: generated, burst: burstConfigJsonSchema(), mapping: mappingJsonSchema() };

test('each shipped DOCUMENT.schema.json is exactly what its schema generates (regenerate with `prescient schema DOCUMENT > shared/schema/json/DOCUMENT.schema.json`)', () => {
  for (const [name, schema] of Object.entries(GENERATED)) {
    const shipped = JSON.parse(readFileSync(new URL(`shared/schema/json/${name}.schema.json`, ROOT), 'utf8'));
    assert.equal(shipped, schema, `shared/schema/json/${name}.schema.json is stale`);
    assert.ok(ajv.validateSchema(schema), `${name}: ${JSON.stringify(ajv.errors)}`);
  }
});

test('the JSON Schema is valid draft-07 that a strict validator compiles, and documents the fields a person writes', () => {
  assert.is(generated.$schema, 'http://json-schema.org/draft-07/schema#');
  assert.ok(ajv.validateSchema(generated), JSON.stringify(ajv.errors));
  const props = generated.properties as Record<string, { description?: string }>;
  assert.equal(Object.keys(props).sort(), ['deadline', 'group', 'input', 'kind', 'output', 'priority', 'submitter']);
  for (const [name, p] of Object.entries(props)) assert.ok(p.description, `${name} has no description`);
  assert.equal(generated.required, ['input', 'output']);
  assert.is(generated.additionalProperties, false);
});

test('every job of the demo batch and of the examples is accepted by both the JSON Schema and the validator', () => {
  const demo = YAML.parseAllDocuments(readFileSync(new URL('deploy/demo/jobs.yaml', ROOT), 'utf8')).map((d) => d.toJS());
  assert.ok(demo.length >= 6);
  for (const doc of [...demo, good(), file()]) {
    assert.equal(jsonSchemaErrors(doc), [], JSON.stringify(doc));
    assert.equal(validatorFields(doc), [], JSON.stringify(doc));
  }
});

test('a wrong field is refused by both, the JSON Schema pointing where the validator names it', () => {
  const cases: [string, (d: ReturnType<typeof good>) => void][] = [
    ['output.codec', (d) => { d.output.codec = 'divx'; }],
    ['input.fps', (d) => { d.input.fps = 0; }],
    ['input.resolution', (d) => { d.input.resolution = '1280 by 720'; }],
    ['output.rate_control.crf', (d) => { (d.output.rate_control as { crf: unknown }).crf = 22.5; }],
    ['output.options.x264-params', (d) => { (d.output.options as Record<string, string>)['x264-params'] = 'a=b'; }],
    ['output.options.tune', (d) => { d.output.options.tune = 'film; rm -rf /'; }],
    ['priority', (d) => { d.priority = 'urgent'; }],
    ['submitter', (d) => { d.submitter = 'a b'; }],
    ['group.size', (d) => { d.group.size = 33; }],
    ['color', (d) => { (d as Record<string, unknown>).color = 'red'; }],
  ];
  for (const [field, spoil] of cases) {
    const d = good();
    spoil(d);
    assert.equal(validatorFields(d), [field], field);
    const errors = jsonSchemaErrors(d);
    assert.ok(errors.length > 0, `the JSON Schema accepts a wrong ${field}`);
    const pointer = `/${field.split('.').slice(0, -1).join('/')}`.replace(/\/$/, '');
    const where = errors.map((e) => e.instancePath);
    assert.ok(where.some((p) => p === `/${field.replace(/\./g, '/')}` || p === pointer || p === ''), `${field}: ${where.join(', ')}`);
  }
});

test('rules across fields are the validator\'s: the JSON Schema lets them through, the validator names them', () => {
  const d = good();
  d.output.preset = 'p4'; // an NVENC preset for libx264
  assert.equal(jsonSchemaErrors(d), []);
  assert.equal(validatorFields(d), ['output.preset']);
});

const burstConfig = () => ({
  provider: 'aws',
  provider_options: { region: 'eu-west-1', image_id: 'ami-0abc' },
  cluster: 'prod',
  catalogue: [
    { name: 'c6i.2xlarge', vcpus: 8, memory_gb: 16, bandwidth_mbps: 12500, price_per_hour: 0.34, spot_price_per_hour: 0.13 },
    { name: 'g5.xlarge', vcpus: 4, memory_gb: 16, gpus: 1, gpu_model: 'A10G', bandwidth_mbps: 10000, price_per_hour: 1.01 },
  ],
  max_instances: 4, budget_per_hour: 3, spot: true, idle_period: '15m', max_wait: { premium: '30s' },
  install: { source: 'git', url: 'https://github.com/example/prescient.git', ref: 'v0.1.0' },
});

test('the burst configuration: a good one passes both; a wrong field or a missing provider option is refused by both', () => {
  const check = ajv.compile(GENERATED.burst);
  const refusedFields = (raw: unknown) => {
    try { validateBurstConfig(raw); return []; } catch (e) { if (!(e instanceof ConfigError)) throw e; return e.issues.map((i) => i.field); }
  };
  assert.ok(check(burstConfig()), JSON.stringify(check.errors));
  assert.equal(refusedFields(burstConfig()), []);
  const spoilt: [string, Record<string, unknown>][] = [
    ['max_instances', { ...burstConfig(), max_instances: 0 }],
    ['provider', { ...burstConfig(), provider: 'ibm' }],
    ['provider_options.region', { ...burstConfig(), provider_options: { image_id: 'ami-0abc' } }],
    ['colour', { ...burstConfig(), colour: 'red' }],
  ];
  for (const [field, raw] of spoilt) {
    assert.ok(refusedFields(raw).includes(field), `${field}: ${refusedFields(raw)}`);
    assert.not.ok(check(raw), `the JSON Schema accepts a wrong ${field}`);
  }
});

test('the training-log mapping: the shipped example passes both; a wrong destination is refused by both', () => {
  const check = ajv.compile(GENERATED.mapping);
  const text = readFileSync(new URL('models/mappings/transcoding-measurements.yaml', ROOT), 'utf8');
  const doc = YAML.parse(text) as { columns: Record<string, unknown> };
  assert.ok(check(doc), JSON.stringify(check.errors));
  parseMapping(text, 'transcoding-measurements.yaml');
  const bad = { ...doc, columns: { ...doc.columns, extra: 'output.colour' } };
  assert.not.ok(check(bad), 'the JSON Schema accepts an unknown field path');
  try {
    parseMapping(JSON.stringify(bad), 'bad.json');
    assert.unreachable('the mapping was accepted');
  } catch (e) {
    assert.instance(e, MappingError);
    assert.ok((e as MappingError).issues.some((i) => i.field === 'columns.extra'), (e as Error).message);
  }
});

test('`prescient schema` prints the generated JSON Schema, and an unknown document is refused naming the known ones', () => {
  for (const [args, want] of [[[], generated], [['burst'], GENERATED.burst], [['mapping'], GENERATED.mapping]] as const) {
    const r = spawnSync(process.execPath, [CLI, 'schema', ...args], { encoding: 'utf8', timeout: 60_000 });
    assert.is(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout), want);
  }
  const bad = spawnSync(process.execPath, [CLI, 'schema', 'nope'], { encoding: 'utf8', timeout: 60_000 });
  assert.is(bad.status, 1, bad.stderr);
  assert.match(bad.stderr, /unknown document "nope" \(known: job, burst, mapping\)/);
});

test.run();
