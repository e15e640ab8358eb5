/**
 * Checking jobs before they are sent, for the CLI (`submit`, `validate`) and the client alike: every
 * field of every document, all issues at once, named by field. A bad job never reaches the cluster
 * (a leader validates it again).
 */
import { existsSync } from 'node:fs';
import { SchemaValidationError, validateEncodingSchema, type EncodingSchema, type FieldIssue, type ValidationContext } from '../../shared/index.js';

/** One job document: the schema checked, and a file input that exists here. */
export function checkJob(raw: unknown, ctx: ValidationContext): EncodingSchema {
  const schema = validateEncodingSchema(raw, ctx);
  if (schema.input.kind === 'file' && !existsSync(schema.input.path)) {
    throw new SchemaValidationError([{ field: 'input.path', reason: `file ${schema.input.path} does not exist` }]);
  }
  return schema;
}

/**
 * Several documents: each checked, and one SchemaValidationError with the issues of all of them,
 * each field prefixed by its document's index (`[1].output.codec`), if any is wrong.
 */
export function checkJobs(docs: readonly unknown[], ctx: ValidationContext): EncodingSchema[] {
  const issues: FieldIssue[] = [];
  const out: EncodingSchema[] = [];
  docs.forEach((raw, i) => {
    try {
      out.push(checkJob(raw, ctx));
    } catch (e) {
      if (!(e instanceof SchemaValidationError)) throw e;
      for (const x of e.issues) issues.push({ field: x.field === '(document)' ? `[${i}]` : `[${i}].${x.field}`, reason: x.reason });
    }
  });
  if (issues.length) throw new SchemaValidationError(issues);
  return out;
}
