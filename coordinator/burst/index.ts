/**
 * Public API of `coordinator/burst/`: cloud burst (issue 7). Providers behind one interface
 * (providers/), the pure decision engine, and the controller the leader runs.
 *
 * The providers themselves are not exported here: each brings its cloud's SDK (up to a second
 * of CPU to load), so `createProvider` imports the one configured, and their tests import
 * providers/<name>.js directly.
 */
export * from './providers/types.js';
export type { AwsProviderOptions } from './providers/aws.js';
export type { GcpProviderOptions } from './providers/gcp.js';
export type { AzureProviderOptions, AzureImage } from './providers/azure.js';
export * from './decide.js';
export * from './forecast.js';
export * from './config.js';
export * from './userdata.js';
export * from './controller.js';
