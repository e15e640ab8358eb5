/** Errors of enforcement. */
import { formatGb } from './limits.js';

/**
 * An encode was stopped because it went over what was reserved for it, e.g. "encode exceeded its
 * memory reservation of 0.04 GB: …". Memory is the only resource whose limit stops an encode
 * (throttled bandwidth only slows it down). `how` says which limit stopped it.
 */
export class ReservationExceededError extends Error {
  readonly resource = 'memory' as const;
  constructor(readonly reserved_gb: number, readonly how: string) {
    super(`encode exceeded its memory reservation of ${formatGb(reserved_gb)} GB: ${how}`);
    this.name = 'ReservationExceededError';
  }
}

/** A `tc` command failed; `message` names the command and carries tc's own words. */
export class TcCommandError extends Error {
  constructor(readonly args: readonly string[], readonly stderr: string, cause?: unknown) {
    super(`tc ${args.join(' ')} failed: ${stderr.trim() || (cause as Error | undefined)?.message || 'no output'}`);
    this.name = 'TcCommandError';
  }

  /** The kernel refused because the qdisc or class id is taken (EEXIST). */
  get exists(): boolean {
    return /File exists/i.test(this.stderr);
  }
}
