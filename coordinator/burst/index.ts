/**
 * Public API of `coordinator/burst/`: cloud burst (issue 7). Providers behind one interface
 * (providers/), the pure decision engine, and the controller the leader runs.
 */
export * from './providers/types.js';
