/** Public API of `models/`: feature encoding, the brain.js predictor and model loading. */
export * from './features.js';
export * from './predictor.js';
export * from './registry.js';
export { priorTargets, priorSamples } from './prior/index.js';
export * from './data/index.js';
