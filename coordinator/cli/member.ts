/**
 * Who a CLI command speaks as on NATS: PRESCIENT_IDENTITY as role/name (`client/ci` may submit,
 * cancel and follow its own jobs only), else an operator (`admin`) named after the OS user. On
 * the host holding the cluster CA its certificate is issued on first use.
 */
import type { NatsConnection } from 'nats';
import { loadEndpoints, loadIdentity, pkiDirOf, type Member } from '../../shared/index.js';
import { defaultMember } from '../client/identity.js';

/** Who this command speaks as (shared with the client: coordinator/client/identity.ts). */
export const cliMember = defaultMember;

/** A NATS connection as this command's member, with the stack in `stateDir`. */
export async function cliBus(stateDir: string): Promise<{ nc: NatsConnection; me: Member }> {
  const endpoints = loadEndpoints(stateDir);
  const id = loadIdentity(pkiDirOf(endpoints), cliMember());
  const { connectBus } = await import('../bus/index.js');
  return { nc: await connectBus(endpoints.nats_url, id, 'prescient-cli'), me: id };
}
