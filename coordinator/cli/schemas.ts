/**
 * The JSON Schemas of the documents people write for Prescient, each generated from the valibot
 * schema that validates it, so what editors check and what the cluster accepts cannot drift.
 * The repo ships them as shared/schema/json/<document>.schema.json (a unit test keeps them fresh).
 */
import { ConfigError, encodingSchemaJsonSchema } from '../../shared/index.js';
import { burstConfigJsonSchema } from '../burst/config.js';
import { mappingJsonSchema } from '../../models/data/mapping.js';

const DOCUMENTS = {
  /** A job file for `prescient submit` / `validate`. */
  job: encodingSchemaJsonSchema,
  /** The burst configuration for `prescient coordinator --burst FILE`. */
  burst: burstConfigJsonSchema,
  /** A training-log mapping for `prescient model train --csv LOG --mapping FILE`. */
  mapping: mappingJsonSchema,
} as const;
export type SchemaDocument = keyof typeof DOCUMENTS;
export const SCHEMA_DOCUMENTS = Object.keys(DOCUMENTS) as SchemaDocument[];

/** The JSON Schema of `which` document; a ConfigError naming the known ones for anything else. */
export function jsonSchema(which: string): object {
  if (!Object.hasOwn(DOCUMENTS, which)) throw new ConfigError('document', `unknown document ${JSON.stringify(which)} (known: ${SCHEMA_DOCUMENTS.join(', ')})`);
  return DOCUMENTS[which as SchemaDocument]();
}
