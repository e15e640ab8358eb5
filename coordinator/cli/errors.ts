/**
 * How a failed command ends: its exit status, and with `--json` one JSON object on stdout
 * (`{"error": {"message": …, "field"?: …}}`), never prose only. main.ts routes every failure
 * through here: a thrown error, a flag commander refused, a job that is not there.
 *
 * Exit statuses:
 * - 0 done;
 * - 1 failed (a job failed, a service answered with an error, a bad flag);
 * - 2 invalid input (a job's schema, a request that does not fit the job, e.g. `stop` on a batch job);
 * - 3 nothing to do (the job had already ended; `stack status`: the stack is down);
 * - 4 no such job;
 * - 5 gave up waiting (`--wait`, `--timeout`): the job is still in the system.
 */
import { ConfigError, SchemaValidationError, redactText, type FieldIssue } from '../../shared/index.js';
import { NoSuchJobError, WrongKindError } from '../client/errors.js';

export const EXIT = { failed: 1, invalid: 2, nothing_to_do: 3, no_such_job: 4, timed_out: 5 } as const;

/** What a failed command prints with --json. */
export interface ErrorJson {
  error: {
    message: string;
    /** The flag, argument or setting it is about (`--state`, `<job-id>`), where there is one. */
    field?: string;
    /** A short stable name of the failure (`no_such_job`, `wrong_kind`, commander's `commander.unknownOption`). */
    code?: string;
    /** Every field of a job document that was refused (an invalid encoding schema). */
    issues?: FieldIssue[];
  };
}

// The client's failures (coordinator/client/errors.ts): the CLI throws and prints the same classes.
export { NoSuchJobError, WrongKindError } from '../client/errors.js';

/** commander's own refusals (unknown option, missing argument): the error it threw. */
interface CommanderLike { code: string; exitCode: number; message: string }
const isCommanderError = (e: unknown): e is CommanderLike => !!e && typeof e === 'object' && (e as Error).name === 'CommanderError';

/** The flag or argument a commander message names ("unknown option '--sate'", "missing required argument 'file'"). */
function commanderField(message: string): string | undefined {
  const option = /option '([^']+)'/.exec(message);
  if (option) return option[1].split(/[ ,<[]/)[0] || option[1];
  const argument = /argument '([^']+)'/.exec(message);
  return argument ? `<${argument[1]}>` : undefined;
}

/** The JSON a failed command prints, its message redacted (tokens and passwords never printed). */
export function errorJson(e: unknown): ErrorJson {
  const message = (m: string) => redactText(m.replace(/^error: /, '').trim());
  if (e instanceof SchemaValidationError) return { error: { message: 'invalid encoding schema', code: 'invalid_schema', issues: e.issues } };
  if (e instanceof ConfigError) {
    // A configuration file refused for several settings at once lists them all, as a job's issues are.
    const issues = e.issues.length > 1 ? { issues: e.issues.map((i) => ({ field: i.field, reason: redactText(i.reason) })) } : {};
    return { error: { message: message(e.message), field: e.setting, code: 'invalid_setting', ...issues } };
  }
  if (e instanceof NoSuchJobError) return { error: { message: message(e.message), field: '<job-id>', code: 'no_such_job' } };
  if (e instanceof WrongKindError) return { error: { message: message(e.message), field: e.field, code: 'wrong_kind' } };
  if (isCommanderError(e)) {
    const field = commanderField(e.message);
    return { error: { message: message(e.message), ...(field && { field }), code: e.code } };
  }
  return { error: { message: message(e instanceof Error ? e.message : String(e)) } };
}

/** The exit status a failure ends the command with. */
export function exitCodeOf(e: unknown): number {
  if (e instanceof SchemaValidationError || e instanceof WrongKindError) return EXIT.invalid;
  if (e instanceof NoSuchJobError) return EXIT.no_such_job;
  if (isCommanderError(e)) return e.exitCode || EXIT.failed;
  return EXIT.failed;
}

/** The failure as prose, for stderr without --json. */
export function errorText(e: unknown): string {
  if (e instanceof ConfigError || e instanceof SchemaValidationError || e instanceof NoSuchJobError || e instanceof WrongKindError) return redactText(e.message);
  return redactText(`error: ${e instanceof Error ? e.message : String(e)}`);
}

/** Whether the arguments ask for JSON: `--json` before any `--` (used when commander refused them before a command ran). */
export function jsonRequested(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).includes('--json');
}

/**
 * `prescient --version` (or `-V`), with `--json` and `--state-dir DIR` allowed beside it: it is
 * read before commander, since `model train --version NAME` names a model version.
 * Undefined when the arguments ask for anything else.
 */
export function versionRequest(args: readonly string[]): { json: boolean } | undefined {
  let version = false, json = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--version' || a === '-V') version = true;
    else if (a === '--json') json = true;
    else if (a === '--state-dir') i++;
    else if (!a.startsWith('--state-dir=')) return undefined;
  }
  return version ? { json } : undefined;
}
