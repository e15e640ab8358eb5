/** The leader's decisions as a pure state machine (core.ts), and the events and effects it speaks (events.ts). */
export { LeaderCore, TIME_LIMIT, type CoreOptions, type TimeLimit } from './core.js';
export type { CoreConfig, Effect, LeaderEvent, ProbeOutcome, Reply, Submission } from './events.js';
export { decisionsOf, replay, type BatchDecisions, type LoggedBatch, type ReplayResult } from './replay.js';
