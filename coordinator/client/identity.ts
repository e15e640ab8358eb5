/**
 * Who a process speaks as on NATS when it is not told: PRESCIENT_IDENTITY as role/name
 * (`client/ci` may submit, cancel and follow its own jobs only), else an operator (`admin`) named
 * after the OS user. The CLI and the client share this default.
 */
import os from 'node:os';
import { ConfigError, type Member } from '../../shared/index.js';

/** `client/<name>` or `admin/<name>` as a member; `setting` names where it came from in the error. */
export function parseMember(v: string, setting: string): Member {
  const [role, name, ...rest] = v.split('/');
  if (rest.length || !name || !['client', 'admin'].includes(role)) throw new ConfigError(setting, `must be client/<name> or admin/<name>, got ${JSON.stringify(v)}`);
  return { role: role as Member['role'], name };
}

export function defaultMember(): Member {
  const v = process.env.PRESCIENT_IDENTITY;
  if (v) return parseMember(v, 'PRESCIENT_IDENTITY');
  const user = os.userInfo().username.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64) || 'operator';
  return { role: 'admin', name: user };
}
