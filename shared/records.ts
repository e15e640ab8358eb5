/**
 * Records read back from a store someone else could have written (a KV bucket, Consul, a file
 * an earlier process left) are checked against a valibot schema before use. `whyNot` says what
 * is wrong in one line naming the field, as every refusal in Prescient does.
 */
import * as v from 'valibot';
import { describeValue } from './errors.js';

export { v };

/** A finite number, or null where JSON wrote a NaN. */
export const figure = v.nullable(v.pipe(v.number(), v.finite()));
/** A finite number. */
export const finite = v.pipe(v.number(), v.finite());
/** A finite number at least 0. */
export const nonNegative = v.pipe(v.number(), v.finite(), v.minValue(0));
/** A short name (ids, codecs, model versions): 1–256 characters. */
export const shortText = v.pipe(v.string(), v.minLength(1), v.maxLength(256));

/** Why `value` is not what `schema` describes, naming the first field that is wrong (undefined when it is). */
export function whyNot(schema: v.GenericSchema, value: unknown): string | undefined {
  const r = checked(schema, value);
  return r.ok ? undefined : r.why;
}

/** `value` as `schema` gives it back (its transforms applied), or why it is not one, naming the field. */
export function checked<S extends v.GenericSchema>(schema: S, value: unknown): { ok: true; value: v.InferOutput<S> } | { ok: false; why: string } {
  const r = v.safeParse(schema, value, { abortEarly: true });
  return r.success ? { ok: true, value: r.output } : { ok: false, why: describeIssue(r.issues[0]) };
}

/** Everything that is wrong in `value`, one line per field (empty when nothing is): for a file a person wrote, every error at once. */
export function whyNotAll(schema: v.GenericSchema, value: unknown): string[] {
  const r = v.safeParse(schema, value, { abortEarly: false });
  return r.success ? [] : r.issues.map(describeIssue);
}

function describeIssue(issue: v.BaseIssue<unknown>): string {
  const at = v.getDotPath(issue);
  // A key a strict object does not have: valibot gives the key's name as the input.
  if (issue.type === 'strict_object' && issue.expected === 'never') return `${at ?? describeValue(issue.input)} is not a setting here`;
  if (issue.input === undefined && at) return `${at} is missing`;
  return `${at ? `${at} ` : ''}${describeValue(issue.input)} is not ${wanted(issue)}`;
}

/** What the field should have been, in words, from valibot's issue. */
function wanted(issue: v.BaseIssue<unknown>): string {
  const e = issue.expected ?? '';
  switch (issue.type) {
    case 'finite': return 'a finite number';
    case 'min_value': return `at least ${e.replace('>=', '')}`;
    case 'max_value': return `at most ${e.replace('<=', '')}`;
    case 'min_length': return `at least ${e.replace('>=', '')} long`;
    case 'max_length': return `at most ${e.replace('<=', '')} long`;
    case 'regex': return issue.message.startsWith('Invalid') ? 'in the expected form' : issue.message;
    case 'object': case 'strict_object': case 'record': return 'a mapping';
    case 'array': return 'a list';
    case 'picklist': return `one of ${e.replace(/^\(|\)$/g, '')}`;
    case 'union': return e.replace(/^\(|\)$/g, '').split(' | ').map((x) => (x === 'Array' ? 'a list' : x === 'Object' ? 'a mapping' : `a ${x}`)).join(' or ');
    case 'integer': return 'a whole number';
    default: return e ? `a ${e}` : issue.message;
  }
}
