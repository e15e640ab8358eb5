/**
 * Leader election. Exactly one coordinator leads at a time; each leadership carries a term
 * number that only grows, which agents use to refuse orders from a deposed leader.
 */
import type { LeaderInfo, LeaderLookup } from '../../shared/index.js';
export type { LeaderInfo, LeaderLookup };
export { ConsulLeaderLookup } from '../../shared/index.js';

export interface ElectionEvents {
  /** This candidate now leads under `term`. */
  elected(term: number): void;
  /** This candidate lost leadership (session lost, lock taken, or stopped). */
  demoted(reason: string): void;
}

export interface LeaderElection {
  /** Starts campaigning; resolves once the first attempt has been made. */
  start(events: ElectionEvents): Promise<void>;
  /** Stops campaigning and gives the lock up at once if held, so a standby takes over without waiting for a TTL. */
  stop(): Promise<void>;
  /**
   * Gives the lock up now if held (a leader that finds itself deposed), and sits out the next
   * `sitOutMs` so that a standby takes it; then campaigns again.
   */
  resign(reason: string, sitOutMs?: number): Promise<void>;
  isLeader(): boolean;
}

export { ConsulLeaderElection, type TermRecord } from './consul.js';
