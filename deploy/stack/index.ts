/**
 * Public API of the local service stack: NATS (JetStream), a Consul dev agent and QuestDB, each a
 * detached process on 127.0.0.1 (or the address given as `host`) with its data under `stateDir/<service>/` and its log under
 * `stateDir/logs/`. The running stack is described by `stackFile(stateDir)` (shared/config.ts),
 * which is where every other component finds the endpoints.
 */
export type { ConfigurablePort, ServiceName, ServiceStatus, StackOptions, StackStatus, StackRecord, ServiceRecord } from './types.js';
export { SERVICE_NAMES } from './types.js';
export { MissingDependencyError, ServiceStartError, StackLockedError, StackNotFoundError } from './errors.js';
export { stackUp, stackDown, stackStatus, stopService, startService } from './stack.js';
export { findQuestdbJar } from './services.js';

import { freePort as freePortAvoiding, LOOPBACK } from './net.js';

/** A port free on 127.0.0.1 (TCP and UDP) right now, for tests that need one more service. */
export async function freePort(): Promise<number> {
  return freePortAvoiding(LOOPBACK);
}
