/**
 * The mapping file as one valibot schema (models/data/mapping.ts over shared/schema/kit.ts):
 * every wrong setting reported at once, keys JavaScript reserves refused by name, a JSON Schema
 * that documents the field paths, targets and units, and the same compiled Mapping as before.
 * What a mapping does to the rows of a log is training-data-import.test.ts's.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FIELD_PATHS, MappingError, mappingJsonSchema, parseMapping } from '../../models/data/index.js';
import type { FieldIssue } from '../../shared/errors.js';
import { TARGETS } from '../../models/record.js';

/** The issues a mapping file is refused with (fails the test if it is accepted). */
function issues(yaml: string, file = 'bad.yaml'): { error: MappingError; issues: FieldIssue[] } {
  try {
    parseMapping(yaml, file);
  } catch (e) {
    assert.instance(e, MappingError);
    return { error: e as MappingError, issues: (e as MappingError).issues };
  }
  assert.unreachable('the mapping was accepted');
  return undefined as never;
}
const RESERVED = /is a name JavaScript reserves for objects \(__proto__, constructor, prototype\), so it cannot be a key/;

test('several wrong settings in one mapping file are all reported at once, each named by its setting', () => {
  const { error, issues: all } = issues([
    'delimiter: "::"',
    'key: ""',
    'columns:',
    '  t: { target: duration_s, unit: ms }',
    '  umem: { target: memory_gb, unit: ms }',
    '  w: output.widht',
    '  s: { field: output.codec, scale: 2 }',
    '  both: { target: cpu_cores, field: input.fps }',
    '  f: { feature: 1x, unit: kilobytes }',
    '  i: [node.hw_class, { field: node.cores, table: { c5.large: two, c5.xlarge: -4, c5.2xlarge: 8 } }]',
    '  a: output.crf',
    '  b: output.crf',
    'values: { output.codek: { x264: h264 } }',
    'defaults: { node.cores: eight, input.resolution: 12, output.codec: 4 }',
    'extra: 1',
  ].join('\n'));
  assert.equal(all.map((i) => i.field), [
    'delimiter', 'key', 'columns.umem.unit', 'columns.w', 'columns.s.scale', 'columns.both', 'columns.f.feature', 'columns.f.unit', 'columns.i[1].table.c5.large',
    'columns.i[1].table.c5.xlarge', 'values.output.codek', 'defaults.node.cores', 'defaults.input.resolution', 'extra', 'columns.b',
  ]);
  const reason = (field: string) => all.find((i) => i.field === field)!.reason;
  assert.match(reason('columns.umem.unit'), /ms is a time unit, but target memory_gb takes a size unit: B, KB, KiB/);
  assert.match(reason('columns.s.scale'), /output.codec is not numeric/);
  assert.match(reason('columns.both'), /exactly one of field, target or feature/);
  // A unit whose destination is wrong too is still checked, against every unit there is.
  assert.match(reason('columns.f.unit'), /unknown unit "kilobytes"; units by kind: time s, ms, us, min, h; bitrate bps, kbps, Mbps; size B, KB/);
  assert.match(reason('columns.i[1].table.c5.xlarge'), /-4 is not a valid number \(it is negative\)/);
  assert.match(reason('columns.b'), /maps to output.crf, which column "a" already fills/);
  // The first issue names the error, and the message has a line per issue, each naming the file.
  assert.is(error.setting, 'delimiter');
  const lines = error.message.split('\n');
  assert.is(lines.length, all.length);
  all.forEach((i, n) => assert.is(lines[n], `bad.yaml: ${i.field}: ${i.reason}`));
});

test('a misspelt setting is reported together with the setting it leaves out', () => {
  assert.equal(issues('colums: { t: { target: duration_s } }').issues, [
    { field: 'columns', reason: 'is required' },
    { field: 'colums', reason: 'is not a mapping setting (expected delimiter, key, time, group, columns, values, defaults)' },
  ]);
});

test('a column whose destinations are all right but that maps no target is reported once the columns are right', () => {
  assert.equal(issues('columns: { w: output.width, c: output.codec }').issues.map((i) => i.field), ['columns']);
  // A column that is wrong may be the target: no "maps no column to a target" beside it.
  assert.equal(issues('columns: { t: { target: runtime }, w: output.width }').issues.map((i) => i.field), ['columns.t.target']);
});

test('__proto__, constructor and prototype are refused by name wherever a mapping file names its own keys', () => {
  const { issues: yaml } = issues([
    'columns:',
    '  t: { target: duration_s }',
    '  __proto__: output.codec',
    '  constructor: output.fps',
    '  i: { field: node.cores, table: { prototype: 2, small: 1 } }',
    'values: { __proto__: { a: b }, output.codec: { constructor: h264 } }',
    'defaults: { prototype: 1 }',
  ].join('\n'));
  assert.equal(yaml.map((i) => i.field), [
    'columns.__proto__', 'columns.constructor', 'columns.i.table.prototype', 'values.__proto__', 'values.output.codec.constructor', 'defaults.prototype',
  ]);
  for (const i of yaml) assert.match(i.reason, RESERVED, i.field);
  // JSON's "__proto__" is an own key like any other, refused the same way; nothing reaches a prototype.
  const { issues: json } = issues('{ "columns": { "t": { "target": "duration_s" }, "__proto__": { "target": "cpu_cores", "polluted": true } } }', 'bad.json');
  assert.equal(json.map((i) => i.field), ['columns.__proto__']);
  assert.match(json[0].reason, RESERVED);
  assert.is(({} as Record<string, unknown>).polluted, undefined);
  assert.is(({} as Record<string, unknown>).target, undefined);
  // In the mapping itself and in a destination they are unknown settings, named as such.
  assert.equal(issues('columns: { t: { target: duration_s, constructor: 1 } }\n__proto__: {}').issues.map((i) => [i.field, i.reason.split(' (')[0]]), [
    ['columns.t.constructor', 'is not a column setting'],
    ['__proto__', 'is not a mapping setting'],
  ]);
});

test('past fifty wrong entries the rest are counted, not listed', () => {
  const columns = Array.from({ length: 60 }, (_, i) => `  c${i}: output.nope${i}`).join('\n');
  const { issues: all } = issues(`columns:\n  t: { target: duration_s }\n${columns}`);
  assert.is(all.length, 51);
  assert.is(all[49].field, 'columns.c49');
  assert.equal(all[50], { field: '(file)', reason: '10 more issue(s) not listed' });
});

/** A JSON Schema node with `$ref`s into `$defs` followed. */
type Node = Record<string, unknown> & { $ref?: string };
function resolver(root: Node) {
  const defs = (root.$defs ?? {}) as Record<string, Node>;
  return (n: unknown): Node => {
    const node = n as Node;
    if (!node?.$ref) return node;
    const name = /^#\/\$defs\/(.+)$/.exec(node.$ref)?.[1];
    assert.ok(name && defs[name], `unresolved $ref ${node.$ref}`);
    return defs[name!];
  };
}

test('the JSON Schema documents the field paths as an enum, the targets and the units', () => {
  const schema = mappingJsonSchema() as Node;
  assert.equal(JSON.parse(JSON.stringify(schema)), schema, 'plain JSON');
  assert.is(schema.title, 'Prescient training-log mapping');
  assert.is(schema.$schema, 'http://json-schema.org/draft-07/schema#');
  assert.is(schema.type, 'object');
  assert.is(schema.additionalProperties, false);
  assert.equal(schema.required, ['columns']);
  const at = resolver(schema);
  const props = schema.properties as Record<string, Node>;
  assert.equal(Object.keys(props), ['delimiter', 'key', 'time', 'group', 'columns', 'values', 'defaults']);
  for (const [name, p] of Object.entries(props)) assert.type(p.description, 'string', `${name} is described`);

  // Field paths: an enum, wherever one is written.
  const fieldPath = at({ $ref: '#/$defs/fieldPath' });
  assert.equal(fieldPath.enum, FIELD_PATHS);
  assert.ok(fieldPath.enum && (fieldPath.enum as string[]).includes('output.resolution'));
  assert.match(fieldPath.description as string, /WIDTHxHEIGHT/);
  assert.equal(at((props.values as Node).propertyNames), fieldPath);
  assert.equal(at((props.defaults as Node).propertyNames), fieldPath);

  // A column: a field path, a destination, or a list of them.
  const ways = ((props.columns.additionalProperties as Node).anyOf as Node[]).map(at);
  assert.is(ways.length, 3);
  assert.equal(ways[0], fieldPath);
  const destination = ways[1];
  assert.equal(ways[2].type, 'array');
  assert.equal(ways[2].minItems, 1);
  assert.equal(((ways[2].items as Node).anyOf as Node[]).map(at), [fieldPath, destination]);

  const d = destination.properties as Record<string, Node>;
  assert.equal(Object.keys(d), ['field', 'target', 'feature', 'unit', 'scale', 'table']);
  assert.is(destination.additionalProperties, false);
  assert.equal(at(d.field), fieldPath);
  assert.equal(d.target.enum, [...TARGETS]);
  assert.match(d.target.description as string, /memory_gb \(GB of 1024³ bytes\)/);
  assert.equal(d.unit.enum, ['s', 'ms', 'us', 'min', 'h', 'bps', 'kbps', 'Mbps', 'B', 'KB', 'KiB', 'MB', 'MiB', 'GB', 'GiB', 'percent', 'fraction']);
  const units = d.unit.description as string;
  assert.match(units, /time units \(s, ms, us, min, h\) for input\.duration_s, target duration_s \(in s\)/);
  assert.match(units, /bitrate units \(bps, kbps, Mbps\) for output\.bitrate_kbps, input\.bitrate_kbps \(in kbit\/s\); target bandwidth_mbps \(in Mbit\/s\)/);
  assert.match(units, /node\.memory_gb, target memory_gb \(in GB of 1024³ bytes\)/);
  assert.equal([d.scale.type, d.scale.exclusiveMinimum], ['number', 0]);
  assert.equal([d.table.type, d.table.minProperties], ['object', 1]);
});

/** What the hand-written parser gave for GOOD (its output, written down before it went). */
const GOOD = `
delimiter: semicolon
key: id
time: ts
group: video
columns:
  o_codec: output.codec
  res: output.resolution
  o_bitrate: { field: output.bitrate_kbps, unit: Mbps }
  size: { field: input.size_bytes, unit: KiB }
  umem: { target: memory_gb, unit: MB }
  cpu_pct: { target: cpu_cores, scale: 0.01 }
  gpu: { target: gpu_percent, unit: fraction, scale: 2 }
  i_size: { feature: i_size_bytes }
  instance:
    - node.hw_class
    - { field: node.cores, table: { c5.large: 2, " c5.xlarge ": "4" } }
    - { field: node.memory_gb, table: { c5.large: 4, c5.xlarge: 8 }, unit: GiB }
values:
  output.codec: { x264: h264, " 265 ": hevc }
  output.preset: { 4: medium }
defaults:
  node.gpus: 0
  input.resolution: 1280x720
  output.rc_mode: " crf "
  input.duration_s: "12.5"
`;

test('a good mapping file parses to the same Mapping as the hand-written parser gave', () => {
  const rule = (column: string, setting: string, to: object, factor: number, table?: [string, unknown][]) =>
    ({ column, setting: `columns.${setting}`, to, factor, ...(table ? { table: new Map(table) } : {}) });
  assert.equal(parseMapping(GOOD, 'good.yaml'), {
    file: 'good.yaml', delimiter: ';', key: 'id', time: 'ts', group: 'video',
    columns: [
      rule('o_codec', 'o_codec', { field: 'output.codec' }, 1),
      rule('res', 'res', { field: 'output.resolution' }, 1),
      rule('o_bitrate', 'o_bitrate', { field: 'output.bitrate_kbps' }, 1000),
      rule('size', 'size', { field: 'input.size_bytes' }, 1024),
      rule('umem', 'umem', { target: 'memory_gb' }, 1e6 / 1024 ** 3),
      rule('cpu_pct', 'cpu_pct', { target: 'cpu_cores' }, 0.01),
      rule('gpu', 'gpu', { target: 'gpu_percent' }, 200),
      rule('i_size', 'i_size', { feature: 'i_size_bytes' }, 1),
      rule('instance', 'instance[0]', { field: 'node.hw_class' }, 1),
      rule('instance', 'instance[1]', { field: 'node.cores' }, 1, [['c5.large', 2], ['c5.xlarge', 4]]),
      rule('instance', 'instance[2]', { field: 'node.memory_gb' }, 1, [['c5.large', 4], ['c5.xlarge', 8]]),
    ],
    values: { 'output.codec': new Map([['x264', 'h264'], ['265', 'hevc']]), 'output.preset': new Map([['4', 'medium']]) },
    defaults: { 'node.gpus': 0, 'input.resolution': { width: 1280, height: 720 }, 'output.rc_mode': 'crf', 'input.duration_s': 12.5 },
  });
  // Settings left out are there, undefined, as they were; values and defaults are empty.
  assert.equal(parseMapping('columns: { t: { target: duration_s } }', 'least.yaml'), {
    file: 'least.yaml', delimiter: undefined, key: undefined, time: undefined, group: undefined,
    columns: [rule('t', 't', { target: 'duration_s' }, 1)], values: {}, defaults: {},
  });
  // null is absent, as YAML writes an empty value.
  assert.equal(parseMapping('delimiter:\nvalues:\ncolumns: { t: { target: duration_s, unit: ms, scale: } }', 'nulls.yaml').columns, [rule('t', 't', { target: 'duration_s' }, 1e-3)]);
});

test.run();
