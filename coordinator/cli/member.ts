/**
 * Who a CLI command speaks as on NATS: PRESCIENT_IDENTITY as role/name (`client/ci` may submit,
 * cancel and follow its own jobs only), else an operator (`admin`) named after the OS user. On
 * the host holding the cluster CA its certificate is issued on first use.
 */
import os from 'node:os';
import type { NatsConnection } from 'nats';
import { ConfigError, loadEndpoints, loadIdentity, pkiDirOf, type Member } from '../../shared/index.js';

export function cliMember(): Member {
  const v = process.env.PRESCIENT_IDENTITY;
  if (v) {
    const [role, name, ...rest] = v.split('/');
    if (rest.length || !name || !['client', 'admin'].includes(role)) throw new ConfigError('PRESCIENT_IDENTITY', `must be client/<name> or admin/<name>, got ${JSON.stringify(v)}`);
    return { role: role as Member['role'], name };
  }
  const user = os.userInfo().username.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64) || 'operator';
  return { role: 'admin', name: user };
}

/** A NATS connection as this command's member, with the stack in `stateDir`. */
export async function cliBus(stateDir: string): Promise<{ nc: NatsConnection; me: Member }> {
  const endpoints = loadEndpoints(stateDir);
  const id = loadIdentity(pkiDirOf(endpoints), cliMember());
  const { connectBus } = await import('../bus/index.js');
  return { nc: await connectBus(endpoints.nats_url, id, 'prescient-cli'), me: id };
}
