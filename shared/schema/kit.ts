/**
 * Valibot, shaped for documents people write (a job, a burst configuration, a mapping file), so
 * that one schema gives the TypeScript type, the validation and the JSON Schema editors read:
 * - every wrong field is reported at once, named by its dotted path, with a reason a person can
 *   act on (one reason per field: a field's pipe stops at its first problem);
 * - every unknown key is refused, and a mapping with a million of them costs a count, not a
 *   million issues; `__proto__`, `constructor` and the like are unknown keys like any other;
 * - a dictionary (keys a person chooses: column names, field paths) refuses `__proto__`,
 *   `constructor` and `prototype` by name, where valibot's `record` skips them without a word;
 * - `null` reads as absent, as YAML writes an empty value (a required key written empty is a
 *   missing one);
 * - a list is never taken for a mapping.
 * The few adapters below wrap valibot's own schemas (their `~run`), so the JSON Schema converter
 * still sees the schema they wrap.
 */
import * as v from 'valibot';
import { createRequire } from 'node:module';
import type { JsonSchema } from '@valibot/to-json-schema';
import { MAX_ISSUES, describeValue, fieldPath, type FieldIssue } from '../errors.js';

export { v };
type Schema = v.GenericSchema;
type Dataset = Parameters<Schema['~run']>[0];
type Config = Parameters<Schema['~run']>[1];
/** A pipe built from a list (valibot's own `pipe` is typed for literal tuples). */
const pipeOf = <T>(...items: unknown[]) => (v.pipe as unknown as (...a: unknown[]) => v.GenericSchema<unknown, T>)(...items);

/**
 * Unknown keys and wrong dictionary entries seen past MAX_ISSUES in the parse under way, counted
 * rather than listed (parses are synchronous).
 */
let omittedKeys = 0;

/** What a document parse gives: the value, or every issue (and how many were only counted). */
export type Outcome<T> = { ok: true; value: T } | { ok: false; issues: FieldIssue[]; omitted: number };

/** How issues name their field. */
export interface FieldNaming {
  /**
   * Keys written bare after a dot; any other key is quoted and cut short (`fieldPath`). A
   * document whose keys are themselves dotted, such as a mapping file's field paths
   * (`defaults.node.cores`), lets dots in.
   */
  bareKey?: RegExp;
}

/** Parses `value` against `schema`, collecting every issue as a FieldIssue. */
export function parseDocument<S extends Schema>(schema: S, value: unknown, naming: FieldNaming = {}): Outcome<v.InferOutput<S>> {
  const outer = omittedKeys;
  omittedKeys = 0;
  try {
    const r = v.safeParse(schema, value);
    if (r.success) return { ok: true, value: r.output };
    return { ok: false, issues: r.issues.map((i) => fieldIssue(i, naming)), omitted: omittedKeys };
  } finally {
    omittedKeys = outer;
  }
}

/** A valibot issue as a FieldIssue: `output.rate_control.crf`, `catalogue[2].name`, `(document)`. */
export function fieldIssue(issue: v.BaseIssue<unknown>, naming: FieldNaming = {}): FieldIssue {
  let field = '';
  for (const p of issue.path ?? []) {
    if (typeof p.key === 'number') field = `${field || '(document)'}[${p.key}]`;
    else if (p.key !== undefined) {
      const key = String(p.key);
      field = naming.bareKey?.test(key) ? (field ? `${field}.${key}` : key) : fieldPath(field, key);
    }
  }
  return { field: field || '(document)', reason: issue.message };
}

/** `missing` where the value is absent, else `other`: what every message here starts from. */
const absentOr = (other: (input: unknown) => string, missing = 'is required') =>
  (issue: v.BaseIssue<unknown>) => (issue.input === undefined || issue.input === null ? missing : other(issue.input));

/** `schema` reporting only its first problem: later checks of a pipe would repeat what is wrong. */
export function first<S extends Schema>(schema: S): S {
  return {
    ...schema,
    '~run'(dataset: Dataset, config: Config) {
      // One such config per parse, kept on the parse's own (valibot makes one per parse).
      const c = config.abortPipeEarly ? config : ((config as Config & { [FIRST]?: Config })[FIRST] ??= { ...config, abortPipeEarly: true });
      return schema['~run'](dataset, c);
    },
  };
}
const FIRST = Symbol('prescient.firstIssueConfig');

/** An optional field for which `null` (YAML's empty value) is absent too. */
export function optional<S extends Schema, D extends v.Default<S, undefined> = undefined>(schema: S, fallback?: D): v.OptionalSchema<S, D> {
  const o = v.optional(schema, fallback as D);
  return {
    ...o,
    '~run'(dataset: Dataset, config: Config) {
      if (dataset.value === null) dataset.value = undefined;
      return o['~run'](dataset, config);
    },
  };
}

export interface MappingOptions<K extends string = string> {
  /** The reason for an unknown key; by default it lists the keys the mapping takes. */
  unknown?: (allowed: readonly string[]) => string;
  /** The reason for a value that is not a mapping, e.g. 'must be a mapping of data column -> destination'. */
  notMapping?: string;
  /**
   * The reason for a required key that is absent or null, by key (default 'is required'): what
   * to write there. A function reads the mapping, e.g. to name what its `provider` needs.
   */
  missing?: { readonly [key in K]?: string | ((mapping: Readonly<Record<string, unknown>>) => string) };
}

const OPTIONAL_TYPES: ReadonlySet<string> = new Set(['optional', 'exact_optional', 'nullish']);

/**
 * A mapping with exactly these keys. Absent or null values of optional keys are left out of
 * the output (not set to undefined), so a parsed document parses again to itself; a required
 * key that is null is missing, as if it were absent.
 */
export function mapping<E extends v.ObjectEntries>(entries: E, o: MappingOptions<keyof E & string> = {}): v.StrictObjectSchema<E, undefined> {
  const allowed = Object.keys(entries);
  const required = allowed.filter((k) => !OPTIONAL_TYPES.has(entries[k].type));
  const unknownReason = o.unknown?.(allowed) ?? `is not a known field (expected one of: ${allowed.join(', ')})`;
  const missing: MappingOptions['missing'] = o.missing;
  const missingReason = (item: v.IssuePathItem | undefined): string => {
    const why = missing?.[String(item?.key)];
    return (typeof why === 'function' ? why(item!.input as Record<string, unknown>) : why) ?? 'is required';
  };
  const message = (issue: v.BaseIssue<unknown>) => {
    if (issue.expected === 'never') return unknownReason;
    if (issue.expected?.startsWith('"')) return missingReason(issue.path?.[0]);
    return absentOr((x) => o.notMapping ? `${o.notMapping}, got ${describeValue(x)}` : `must be a mapping, got ${describeValue(x)}`)(issue);
  };
  const strict = v.strictObject(entries, message);
  const known = v.object(entries, message);
  return {
    ...strict,
    '~run'(dataset: Dataset, config: Config) {
      const input = dataset.value;
      if (Array.isArray(input)) {
        v._addIssue(strict, 'type', dataset, config);
        return dataset;
      }
      if (input && typeof input === 'object' && required.some((k) => Object.hasOwn(input, k) && (input as Record<string, unknown>)[k] == null)) {
        // Read without the required keys written empty, so each is reported as missing.
        dataset.value = Object.fromEntries(Object.entries(input).filter(([k, x]) => x != null || !required.includes(k)));
      }
      const out = known['~run'](dataset, config) as unknown as Dataset & { value: Record<string, unknown> };
      if (!input || typeof input !== 'object') return out;
      let seen = 0;
      for (const key of Object.keys(input)) {
        if (Object.hasOwn(entries, key)) continue;
        if (seen++ >= MAX_ISSUES || (config.abortEarly && out.issues)) { omittedKeys++; continue; }
        v._addIssue(strict, 'key', out, config, {
          input: key, expected: 'never',
          path: [{ type: 'object', origin: 'key', input: input as Record<string, unknown>, key, value: (input as Record<string, unknown>)[key] }],
        });
      }
      if (out.typed === false || out.issues) return out;
      // Copied, not deleted: `delete` leaves V8 a slow dictionary object.
      const value = out.value;
      for (const k in value) {
        if (value[k] !== undefined) continue;
        const kept: Record<string, unknown> = {};
        for (const j in value) if (value[j] !== undefined) kept[j] = value[j];
        out.value = kept;
        break;
      }
      return out;
    },
  } as unknown as v.StrictObjectSchema<E, undefined>;
}

/** Keys valibot's `record` skips without a word (they would reach an object's prototype). */
const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * A mapping of keys a person chooses (column names, field paths) to values: each key checked by
 * `key`, each value by `value`, every wrong entry reported (past MAX_ISSUES of them, counted).
 * `__proto__`, `constructor` and `prototype` are refused by name; a list is not a dictionary.
 */
export function dictionary<K extends v.GenericSchema<string, string>, S extends Schema>(
  key: K, value: S, o: Pick<MappingOptions, 'notMapping'> = {},
): v.RecordSchema<K, S, undefined> {
  const record = v.record(key, value, absentOr((x) => `${o.notMapping ?? 'must be a mapping'}, got ${describeValue(x)}`));
  return {
    ...record,
    '~run'(given: Dataset, config: Config) {
      const dataset = given as { typed: boolean; value: unknown; issues?: v.BaseIssue<unknown>[] };
      const input = dataset.value as Record<string, unknown>;
      if (!input || typeof input !== 'object' || Array.isArray(input)) {
        v._addIssue(record, 'type', given, config);
        return given;
      }
      const out: Record<string, unknown> = {};
      dataset.typed = true;
      dataset.value = out;
      let wrong = 0;
      for (const k of Object.keys(input)) {
        const item = input[k];
        const at = (origin: 'key' | 'value') => ({ type: 'object' as const, origin, input, key: k, value: item });
        const found: { path?: v.IssuePathItem[] }[] = [];
        let output: unknown;
        if (RESERVED_KEYS.has(k)) {
          const d = { value: k } as Dataset;
          v._addIssue(record, 'key', d, config, {
            input: k, expected: 'never', path: [at('key')],
            message: 'is a name JavaScript reserves for objects (__proto__, constructor, prototype), so it cannot be a key',
          } as never);
          found.push(...(d.issues as unknown as typeof found));
        } else {
          const kd = key['~run']({ value: k }, config);
          for (const i of (kd.issues ?? []) as typeof found) { i.path = [at('key')]; found.push(i); }
          const vd = value['~run']({ value: item }, config);
          for (const i of (vd.issues ?? []) as typeof found) { (i.path ??= []).unshift(at('value')); found.push(i); }
          if (!found.length) output = vd.value;
        }
        if (!found.length) { out[k] = output; continue; }
        dataset.typed = false;
        if (wrong++ < MAX_ISSUES) (dataset.issues ??= []).push(...(found as v.BaseIssue<unknown>[]));
        else omittedKeys++;
        if (config.abortEarly) break;
      }
      return given;
    },
  } as unknown as v.RecordSchema<K, S, undefined>;
}

/** How a value is written, for `either`. */
export type Written = 'text' | 'number' | 'flag' | 'mapping' | 'list';
const writtenAs = (x: unknown): Written | undefined =>
  typeof x === 'string' ? 'text' : typeof x === 'number' ? 'number' : typeof x === 'boolean' ? 'flag'
    : Array.isArray(x) ? 'list' : x !== null && typeof x === 'object' ? 'mapping' : undefined;

/**
 * A value that may be written several ways (a field path, or a mapping that says more, or a list
 * of them), told apart by how it is written: that way's schema checks it, so a wrong value gets
 * that schema's reasons, not a union's. `reason` says what it must be when it is written none of
 * these ways, e.g. 'must be a field path, a destination or a list of them'. Its JSON Schema is
 * `anyOf` the ways.
 */
export function either<const W extends Partial<Record<Written, Schema>>>(ways: W, reason: string) {
  const union = v.union(Object.values(ways) as Schema[], absentOr((x) => `${reason}, got ${describeValue(x)}`, reason));
  return {
    ...union,
    '~run'(dataset: Dataset, config: Config) {
      const way = writtenAs(dataset.value);
      const schema = way && ways[way];
      if (!schema) {
        v._addIssue(union, 'type', dataset, config);
        return dataset;
      }
      return schema['~run'](dataset, config);
    },
  } as unknown as v.GenericSchema<unknown, { [K in keyof W]: W[K] extends Schema ? v.InferOutput<W[K]> : never }[keyof W]>;
}

/** `schema` with a description, which the JSON Schema carries to editors (hover text). */
export const described = <S extends Schema>(schema: S, text: string) => v.pipe(schema, v.description(text));

/** A numeric string as the number it spells (YAML and flags write `30` as text sometimes). */
const numeric = (x: unknown) => (typeof x === 'string' && x.trim() !== '' && Number.isFinite(Number(x)) ? Number(x) : x);

export interface NumberRule {
  /** Inclusive lower bound, or `above` for an exclusive one. */
  min?: number;
  above?: number;
  max?: number;
  integer?: boolean;
  /** How the lower bound reads in a message where its decimal form would not (1/1001). */
  minText?: string;
}

/** A finite number in range, a numeric string taken as its number; one problem reported. */
export function num(rule: NumberRule = {}) {
  const lo = rule.above ?? rule.min;
  const loText = rule.minText ?? String(lo);
  const notNumber = absentOr((x) => `must be a number, got ${describeValue(x)}`);
  return first(pipeOf<number>(
    v.unknown(),
    v.transform(numeric),
    v.number(notNumber),
    v.finite(notNumber),
    ...(rule.integer ? [v.integer((i: v.BaseIssue<unknown>) => `must be a whole number, got ${i.input}`)] : []),
    ...(lo !== undefined && lo >= 0 ? [v.check((n: number) => n >= 0, (i: v.BaseIssue<unknown>) => `must not be negative, got ${i.input}`)] : []),
    ...(rule.above !== undefined ? [v.gtValue(rule.above, (i: v.BaseIssue<unknown>) => `must be greater than ${loText}, got ${i.input}`)] : []),
    ...(rule.min !== undefined ? [v.minValue(rule.min, (i: v.BaseIssue<unknown>) => `must be at least ${loText}, got ${i.input}`)] : []),
    ...(rule.max !== undefined ? [v.maxValue(rule.max, (i: v.BaseIssue<unknown>) => `must be at most ${rule.max}, got ${i.input}`)] : []),
  ));
}

/** One of `options` (a number is read as its text, so a preset may be written 4 or "4"). */
export function oneOf<const T extends readonly string[]>(options: T) {
  const listed = options.join(', ');
  const schema = first(v.pipe(
    v.unknown(),
    v.transform((x) => (typeof x === 'number' ? String(x) : x)),
    v.picklist(options, absentOr((x) => typeof x === 'string' ? `unknown value ${describeValue(x)} (expected one of: ${listed})` : `must be one of: ${listed}`)),
  ) as unknown as v.GenericSchema<unknown, T[number]>);
  // YAML writes `preset: 4` as a number: say so to editors too.
  const numbers = options.filter((o) => /^(0|[1-9][0-9]{0,8})$/.test(o)).map(Number);
  return numbers.length ? advertised(schema, { enum: [...options, ...numbers] }) : schema;
}

/** A string matching `pattern`; `reason` says what it must be, e.g. 'must be 1–64 letters or digits'. */
export function text(pattern: RegExp, reason: string) {
  const why = absentOr((x) => `${reason}, got ${describeValue(x)}`);
  return first(v.pipe(v.string(why), v.regex(pattern, why)));
}

/** true or false. */
export const flag = () => v.boolean(absentOr((x) => `must be true or false, got ${describeValue(x)}`));

/**
 * A list of at most `max` items (a longer one is refused before its items are looked at: a pipe
 * stops at its next schema once it has an issue). Not `first`: that would stop the pipes of its
 * items at their first problem too, and an item's cross-field checks would go unreported.
 */
export function list<S extends Schema>(item: S, o: {
  min?: number; max: number;
  /** What it must be, for a value that is not a list: 'a list of destinations'. */
  what?: string;
  /** The reason for a list shorter than `min`, e.g. 'is an empty list; give it at least one destination'. */
  minReason?: string;
}) {
  const what = o.what ?? 'a list';
  return pipeOf<v.InferOutput<S>[]>(
    v.unknown(),
    v.check((x) => !Array.isArray(x) || x.length <= o.max, `must have at most ${o.max} items`),
    v.array(item, absentOr((x) => `must be ${what}, got ${describeValue(x)}`)),
    ...(o.min ? [v.minLength(o.min, o.minReason ?? `must have at least ${o.min} item${o.min === 1 ? '' : 's'}`)] : []),
  );
}

/** The path items of `keys` under `root`: where a check of a whole reports a problem with one part of it. */
export function pathTo(root: unknown, keys: readonly (string | number)[]): [v.UnknownPathItem, ...v.UnknownPathItem[]] {
  let input = root;
  return keys.map((key) => {
    const value = input !== null && typeof input === 'object' ? (input as Record<string | number, unknown>)[key] : undefined;
    const item: v.UnknownPathItem = { type: 'unknown', origin: 'value', input, key, value };
    input = value;
    return item;
  }) as [v.UnknownPathItem, ...v.UnknownPathItem[]];
}

/**
 * A rule between the fields of a mapping, for its pipe: `check` reports each problem on the field
 * it names (`['instance_types', 1]`). It runs only where the document is a mapping and the fields
 * it `reads` (paths from the mapping, e.g. `['catalogue']`) came out without an issue of their
 * own, so a wrong field is reported once; valibot's partialCheck runs again where a field failed
 * a check rather than its type. The other fields of `value` may be as written.
 */
export function crossCheck<T>(
  reads: readonly (readonly (string | number)[])[],
  check: (value: T, report: (at: readonly (string | number)[], reason: string) => void) => void,
) {
  return v.rawCheck<T>(({ dataset, addIssue }) => {
    const touched = (path: readonly v.IssuePathItem[] | undefined) =>
      !path || reads.some((r) => r.slice(0, path.length).every((key, n) => path[n].key === key));
    if (dataset.issues?.some((i) => touched(i.path))) return;
    check(dataset.value as T, (at, reason) => addIssue({ message: reason, path: pathTo(dataset.value, at) }));
  });
}


/** A schema that refuses whatever it is given, saying why (at `at` under it, where given). */
export function refuse(reason: string, at?: string) {
  return v.pipe(v.unknown(), v.rawCheck(({ dataset, addIssue }) => addIssue({
    message: reason,
    path: at === undefined ? undefined : [{ type: 'unknown', origin: 'value', input: dataset.value, key: at, value: undefined }] as never,
  })));
}

/** What `advertised` schemas tell the JSON Schema in place of what the converter would. */
const ADVERTISED = new WeakMap<object, JsonSchema | (() => JsonSchema)>();

/**
 * `schema` with its JSON Schema given by hand: for a field whose written forms the validator
 * picks between (a `WIDTHxHEIGHT` string or a mapping) where the converter would see one form.
 * A function is called only when a JSON Schema is made, so validating never builds one.
 */
export function advertised<S extends Schema>(schema: S, json: JsonSchema | (() => JsonSchema)): S {
  const { pipe: _pipe, ...rest } = schema as S & { pipe?: unknown };
  const out = { ...rest, type: 'advertised', '~run': (d: Dataset, c: Config) => schema['~run'](d, c) } as unknown as S;
  ADVERTISED.set(out, json);
  return out;
}

/** The JSON Schema of `schema` to embed in another (no `$schema` of its own). */
export function fragment(schema: Schema): JsonSchema {
  const { $schema: _s, ...rest } = jsonSchemaOf(schema);
  return rest;
}

/** Actions the JSON Schema cannot say (cross-field checks, transforms): left to the validator. */
const VALIDATOR_ONLY = new Set(['check', 'raw_check', 'partial_check', 'transform', 'raw_transform', 'finite', 'forward']);

/**
 * The JSON Schema (draft-07) of what a schema accepts, for editors and other tools. Pipes are
 * described by their last schema (numbers written as strings are accepted but not advertised);
 * cross-field checks are the validator's alone. `definitions` are written once, under `$defs`,
 * and referred to wherever that very schema appears (not inside another's pipe): a list of 30
 * field paths used six times is listed once.
 */
export function jsonSchemaOf(
  schema: Schema, o: { title?: string; description?: string; id?: string; definitions?: Record<string, Schema> } = {},
): JsonSchema {
  // Loaded here, not at import: only `prescient schema` and the tests make JSON Schemas.
  const { toJsonSchema } = createRequire(import.meta.url)('@valibot/to-json-schema') as typeof import('@valibot/to-json-schema');
  const out = toJsonSchema(schema, {
    typeMode: 'output',
    errorMode: 'throw',
    ...(o.definitions ? { definitions: o.definitions } : {}),
    overrideAction: ({ valibotAction, jsonSchema }) => (VALIDATOR_ONLY.has(valibotAction.type) ? jsonSchema : undefined),
    overrideSchema: ({ valibotSchema, jsonSchema }) => {
      const json = ADVERTISED.get(valibotSchema);
      return json ? { ...jsonSchema, ...(typeof json === 'function' ? json() : json) } : undefined;
    },
  });
  return { ...(o.id ? { $id: o.id } : {}), ...out, ...(o.title ? { title: o.title } : {}), ...(o.description ? { description: o.description } : {}) };
}
