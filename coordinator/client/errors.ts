/**
 * How a client call fails: one class per failure, each carrying the job or field it is about,
 * so a caller branches on `instanceof` (or `name`) and never on the message. The CLI prints the
 * same classes (coordinator/cli/errors.ts gives each its exit status and JSON shape).
 * SchemaValidationError and ConfigError (shared/errors.ts) are re-exported by the client's index.
 */
import { isFinalEvent, type TaskEvent } from '../../shared/index.js';

/** A job id nobody has (no task record, no submission waiting in JetStream), or none this member can see. */
export class NoSuchJobError extends Error {
  constructor(readonly jobId: string, detail = 'no task record and no submission waiting in JetStream') {
    super(`no job ${jobId}: ${detail}`);
    this.name = 'NoSuchJobError';
  }
}

/** A request that does not fit the job it names (`stop` on a batch job); `field` is what to change. */
export class WrongKindError extends Error {
  constructor(readonly field: string, message: string) {
    super(message);
    this.name = 'WrongKindError';
  }
}

/**
 * `stop` on a job whose kind this member cannot read: a client cannot read task records, and the
 * job was not submitted through this connection. The leader ends a job by its kind, so `stop` on
 * a batch job would cancel it (its output discarded); `stop(id, { live: true })` says it is a
 * live channel and sends the request anyway.
 */
export class UnknownKindError extends Error {
  constructor(readonly jobId: string) {
    super(`cannot tell whether ${jobId} is a live channel: a client cannot read task records and it was not submitted through this connection (stop on a batch job would cancel it); pass { live: true } if it is one`);
    this.name = 'UnknownKindError';
  }
}

/**
 * A wait (`submit` with `wait`, `cancel`/`stop` with `wait`) ran out of time. The jobs carry on:
 * `last` holds the last event seen of each (undefined: none yet, e.g. no leader has taken it).
 */
export class WaitTimeoutError extends Error {
  constructor(readonly timeoutMs: number, readonly last: ReadonlyMap<string, TaskEvent | undefined>) {
    const going = [...last].filter(([, e]) => !e || !isFinalEvent(e)).map(([id, e]) => `${id} ${e ? `still ${e.state}` : 'not yet taken by a leader'}`);
    super(`gave up waiting after ${timeoutMs} ms: ${going.join(', ')}; the jobs are still in the system`);
    this.name = 'WaitTimeoutError';
  }
}

/** A call on a client after `close()`, or a `watch` that `close()` ended before its job's final event. */
export class ClientClosedError extends Error {
  constructor() {
    super('the Prescient client is closed');
    this.name = 'ClientClosedError';
  }
}
