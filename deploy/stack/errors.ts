/** One error class per way bringing up the stack can fail. */
import type { ServiceName } from './types.js';

/** A binary or jar a service needs is not installed. */
export class MissingDependencyError extends Error {
  constructor(readonly dependency: string, detail: string) {
    super(`${dependency} not found (${detail}); run deploy/install.sh`);
    this.name = 'MissingDependencyError';
  }
}

/** A service exited or did not become healthy in time; the message ends with the tail of its log. */
export class ServiceStartError extends Error {
  constructor(readonly service: ServiceName, readonly log_file: string, reason: string, logTail: string) {
    super(`${service} failed to start: ${reason}; see ${log_file}${logTail ? `\n--- last lines of ${log_file} ---\n${logTail}` : ''}`);
    this.name = 'ServiceStartError';
  }
}

/** An operation needs a stack (or one service's record) that the stack file does not have. */
export class StackNotFoundError extends Error {
  constructor(readonly stack_file: string, what: string) {
    super(`${what}: no record in ${stack_file} (run stack up first)`);
    this.name = 'StackNotFoundError';
  }
}

/** Another live process has held the state dir's lock for too long. */
export class StackLockedError extends Error {
  constructor(readonly lock_file: string, readonly holder: number | undefined) {
    super(`stack state is locked by ${holder ? `pid ${holder}` : 'another process'} (${lock_file})`);
    this.name = 'StackLockedError';
  }
}
