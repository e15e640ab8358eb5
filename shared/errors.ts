/** One problem with one field of a submitted document. */
export interface FieldIssue {
  /** Dotted path of the field, e.g. `output.rate_control.crf`. */
  field: string;
  /** Why the value was refused, in words a submitter can act on. */
  reason: string;
}

/**
 * How much of a submitted value a message may repeat. Refusals are stored with the job and
 * logged, so a 600 KB value must not make a 600 KB record (issue 17).
 */
export const MAX_ECHO_CHARS = 80;
/** Most issues one refusal lists; the rest are counted in a last `(document)` issue. */
export const MAX_ISSUES = 50;
const MAX_FIELD_CHARS = 200;
const MAX_REASON_CHARS = 400;

/** `s` cut to `max` characters, with an ellipsis saying it was cut. */
export function truncate(s: string, max = MAX_ECHO_CHARS): string {
  if (s.length <= max) return s;
  // Do not leave half a surrogate pair behind.
  let end = max - 1;
  const code = s.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--;
  return `${s.slice(0, end)}…`;
}

/**
 * A submitted value as a message shows it: at most about MAX_ECHO_CHARS characters, never
 * throwing (whatever it is: a BigInt, a symbol, a cycle, 100,000 levels of nesting), and with
 * NaN and ±Infinity named as such rather than as JSON's `null`.
 */
export function describeValue(v: unknown): string {
  try {
    return truncate(preview(v, 0));
  } catch {
    return 'a value that cannot be shown';
  }
}

/** JSON-like text of `v`, two levels deep, that stops walking once it is long enough to be cut. */
function preview(v: unknown, depth: number): string {
  switch (typeof v) {
    case 'number': return Object.is(v, -0) ? '-0' : String(v);
    // Cut inside the quotes, so that a cut string still reads as one.
    case 'string': return JSON.stringify(truncate(v, MAX_ECHO_CHARS - 2));
    case 'bigint': return `${v}n`;
    case 'symbol': return 'a symbol';
    case 'function': return 'a function';
    case 'undefined': return 'undefined';
    case 'boolean': return String(v);
  }
  if (v === null) return 'null';
  const list = Array.isArray(v);
  if (depth >= 2) return list ? '[…]' : '{…}';
  const parts: string[] = [];
  let length = 0;
  const add = (s: string) => { parts.push(s); length += s.length + 1; return length > MAX_ECHO_CHARS; };
  if (list) {
    for (let i = 0; i < v.length; i++) if (add(preview(v[i], depth + 1))) break;
    return `[${parts.join(',')}]`;
  }
  for (const k in v as object) {
    if (!Object.hasOwn(v as object, k)) continue;
    if (add(`${JSON.stringify(truncate(k))}:${preview((v as Record<string, unknown>)[k], depth + 1)}`)) break;
  }
  return `{${parts.join(',')}}`;
}

/** `parent.key`, with a key that is long, empty or not a plain name quoted and cut short. */
export function fieldPath(parent: string, key: string): string {
  const plain = /^[A-Za-z0-9_$-]{1,64}$/.test(key);
  if (plain) return parent ? `${parent}.${key}` : key;
  return `${parent || '(document)'}[${JSON.stringify(truncate(key, 40))}]`;
}

/** A document failed validation; `issues` names every field that is wrong. */
export class SchemaValidationError extends Error {
  readonly issues: FieldIssue[];
  /**
   * @param omitted issues found beyond those passed, counted rather than listed.
   * Every issue is kept short and names a field, whoever built it, so a refusal can always be
   * stored and shown.
   */
  constructor(issues: FieldIssue[], omitted = 0) {
    const listed = listIssues(issues, omitted);
    super(`invalid encoding schema:\n${listed.map((i) => `  ${i.field}: ${i.reason}`).join('\n')}`);
    this.name = 'SchemaValidationError';
    this.issues = listed;
  }
}

/**
 * `issues` as a refusal lists them: at most MAX_ISSUES, each short and naming a field, the rest
 * (and `omitted`, those only counted) in a last `document` issue; never empty.
 */
function listIssues(issues: readonly FieldIssue[], omitted: number, document = '(document)'): FieldIssue[] {
  const listed = issues.slice(0, MAX_ISSUES).map((i) => ({
    field: truncate(String(i.field ?? ''), MAX_FIELD_CHARS) || document,
    reason: truncate(String(i.reason ?? ''), MAX_REASON_CHARS) || 'is invalid',
  }));
  const more = omitted + Math.max(0, issues.length - MAX_ISSUES);
  if (more > 0) listed.push({ field: document, reason: `${more} more issue(s) not listed` });
  if (listed.length === 0) listed.push({ field: document, reason: 'is invalid' });
  return listed;
}

/** A configuration value (flag, environment variable, stack file) is missing or malformed. */
export class ConfigError extends Error {
  /** The setting refused: the first of `issues`. */
  readonly setting: string;
  /** Every problem found, one per setting (just `setting`'s, where one setting was checked). */
  readonly issues: readonly FieldIssue[];
  /** The message is `setting: reason`, or with several `issues` each such line in turn. */
  constructor(setting: string, reason: string, issues: readonly FieldIssue[] = [{ field: setting, reason }]) {
    super(issues.map((i) => `${i.field}: ${i.reason}`).join('\n'));
    this.name = 'ConfigError';
    this.setting = setting;
    this.issues = issues;
  }

  /**
   * A configuration file refused for every issue at once (at most MAX_ISSUES listed, the rest
   * and `omitted` counted); `document` names the file as a whole where an issue's field is
   * `(document)`, e.g. `burst`.
   */
  static of(issues: readonly FieldIssue[], omitted = 0, document = '(document)'): ConfigError {
    const named = issues.map((i) => ({ ...i, field: i.field.replace(/^\(document\)/, document) }));
    const listed = listIssues(named, omitted, document);
    return new ConfigError(listed[0].field, listed[0].reason, listed);
  }
}

/** An assignment carried a leader term older than one the agent has already seen. */
export class StaleTermError extends Error {
  constructor(readonly got: number, readonly current: number) {
    super(`stale leader term ${got}: this agent has seen term ${current}`);
    this.name = 'StaleTermError';
  }
}
