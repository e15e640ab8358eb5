/** Public API of `shared/`: types, validation, subjects, config and the gRPC API. */
export * from './errors.js';
export * from './schema/encoding-schema.js';
export * from './task.js';
export * from './subjects.js';
export * from './config.js';
export * from './grpc.js';
export * from './discovery.js';
export * from './telemetry.js';
export * from './feedback.js';
export * from './redact.js';
export * from './records.js';
export * from './pki/index.js';
