/**
 * Public API of `coordinator/burst/`: cloud burst (issue 7). Providers behind one interface
 * (providers/), the pure decision engine, and the controller the leader runs.
 */
export * from './providers/types.js';
export * from './providers/aws.js';
export * from './decide.js';
export * from './forecast.js';
export * from './config.js';
export * from './userdata.js';
export * from './controller.js';
export { GcpProvider, type GcpProviderOptions } from './providers/gcp.js';
export { AzureProvider, type AzureProviderOptions, type AzureImage } from './providers/azure.js';
