/** One problem with one field of a submitted document. */
export interface FieldIssue {
  /** Dotted path of the field, e.g. `output.rate_control.crf`. */
  field: string;
  /** Why the value was refused, in words a submitter can act on. */
  reason: string;
}

/** A document failed validation; `issues` names every field that is wrong. */
export class SchemaValidationError extends Error {
  readonly issues: FieldIssue[];
  constructor(issues: FieldIssue[]) {
    super(`invalid encoding schema:\n${issues.map((i) => `  ${i.field}: ${i.reason}`).join('\n')}`);
    this.name = 'SchemaValidationError';
    this.issues = issues;
  }
}

/** A configuration value (flag, environment variable, stack file) is missing or malformed. */
export class ConfigError extends Error {
  readonly setting: string;
  constructor(setting: string, reason: string) {
    super(`${setting}: ${reason}`);
    this.name = 'ConfigError';
    this.setting = setting;
  }
}

/** An assignment carried a leader term older than one the agent has already seen. */
export class StaleTermError extends Error {
  constructor(readonly got: number, readonly current: number) {
    super(`stale leader term ${got}: this agent has seen term ${current}`);
    this.name = 'StaleTermError';
  }
}
