/** Public API of `models/`: records, feature encoding, training, evaluation, the model registry. */
export * from './record.js';
export * from './features.js';
export * from './model.js';
export * from './conformal.js';
export * from './lookup.js';
export * from './linear.js';
export { CompiledNetwork, seededRandom, DEFAULT_NETWORK_OPTIONS, type NetworkJson, type NetworkTrainOptions } from './network.js';
export * from './training/index.js';
export * from './training/retrain.js';
export * from './federated/index.js';
export * from './evaluation/metrics.js';
export * from './evaluation/baselines.js';
export * from './registry.js';
export { priorTargets, priorRows } from './prior/index.js';
export * from './data/index.js';
export { predictWork, predictWorkEach, predictLive, LIVE_WINDOW_S } from './live.js';
