/**
 * Join tokens: how an on-premise host becomes a node (issue 18's bootstrap). An operator on the
 * CA host runs `prescient certs join-token --nodes N --ttl 24h`. That issues a one-time enrolment
 * certificate named `join-<random>` (shared with burst launches' enrolment, role `enrol`), records
 * in Consul how many nodes it may enrol and until when (`prescient/pki/joins/<name>`, written with
 * the management token), and prints the token: the CA certificate, the enrolment pair, and the
 * cluster's endpoints and QuestDB password, base64url JSON.
 *
 * The new host runs `prescient join --token …` (deploy/install.sh --agent --join … --token … does):
 * it makes its own key, shows the enrolment certificate to the leader (gRPC Enrol), and the
 * leader signs a node certificate for it once the Consul record still has room (check-and-set,
 * so two hosts joining at once cannot both take the last place). The key never leaves the host.
 * The token is a secret until it expires or its places are used: whoever holds it can enrol.
 */
import { consulClient, type KvItem } from '../discovery.js';
import { ConfigError } from '../errors.js';
import { shortText, v, whyNot } from '../records.js';

export const JOINS_PREFIX = 'prescient/pki/joins/';
/** Enrolment certificates made for join tokens are named so; burst launches' are not. */
export const JOIN_NAME = /^join-[0-9a-f]{16}$/;
/** A token enrols at most this many nodes. */
export const MAX_JOIN_NODES = 10_000;

const pem = v.pipe(v.string(), v.maxLength(16_384), v.regex(/-----BEGIN /, 'a PEM text'));
const url = v.pipe(v.string(), v.minLength(1), v.maxLength(2048));

const JoinTokenSchema = v.object({
  v: v.literal(1),
  ca: pem,
  cert: pem,
  key: pem,
  endpoints: v.object({ nats_url: url, consul_http: url, questdb_http: url, questdb_pg: url }),
  questdb_password: v.optional(shortText),
  expires_at: v.pipe(v.number(), v.integer()),
});
export type JoinToken = v.InferOutput<typeof JoinTokenSchema>;

const JoinRecordSchema = v.object({
  nodes: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(MAX_JOIN_NODES)),
  enrolled: v.pipe(v.array(shortText), v.maxLength(MAX_JOIN_NODES)),
  expires_at: v.pipe(v.number(), v.integer()),
});
export type JoinRecord = v.InferOutput<typeof JoinRecordSchema>;

export function encodeJoinToken(t: JoinToken): string {
  return Buffer.from(JSON.stringify(t)).toString('base64url');
}

/** The token's contents, checked field by field; a ConfigError naming what is wrong otherwise. */
export function decodeJoinToken(text: string): JoinToken {
  let x: unknown;
  try {
    x = JSON.parse(Buffer.from(text.trim(), 'base64url').toString('utf8'));
  } catch {
    throw new ConfigError('--token', 'is not a join token (base64url JSON from `prescient certs join-token`)');
  }
  const why = whyNot(JoinTokenSchema, x);
  if (why) throw new ConfigError('--token', `is not a join token: ${why}`);
  return x as JoinToken;
}

/**
 * Whether `record` lets `nodeId` enrol at `now`, and the record after it does; a reason
 * otherwise. A node id enrols once per token: another holder of the token must not get a
 * certificate for a node that is already in the cluster.
 */
export function decideJoin(record: JoinRecord | undefined, nodeId: string, now: number): { ok: true; record: JoinRecord } | { ok: false; why: string } {
  if (!record) return { ok: false, why: 'this join token is not one this cluster made (or it was withdrawn)' };
  if (now > record.expires_at) return { ok: false, why: `this join token expired at ${new Date(record.expires_at).toISOString()}` };
  if (record.enrolled.includes(nodeId)) return { ok: false, why: `${nodeId} has enrolled with this join token already (revoke it and use a new token to enrol it again)` };
  if (record.enrolled.length >= record.nodes) return { ok: false, why: `this join token's ${record.nodes} place${record.nodes > 1 ? 's are' : ' is'} used (${record.enrolled.slice(0, 5).join(', ')}${record.enrolled.length > 5 ? ', …' : ''})` };
  return { ok: true, record: { ...record, enrolled: [...record.enrolled, nodeId] } };
}

/** Records a new token's places in Consul (with the management token); fails if the name is taken. */
export async function recordJoin(consulHttp: string, token: string, name: string, record: JoinRecord): Promise<void> {
  const ok = await consulClient(consulHttp, token).kv.set({ key: JOINS_PREFIX + name, value: JSON.stringify(record), cas: 0 });
  if (!ok) throw new Error(`${JOINS_PREFIX}${name} exists already`);
}

/**
 * Takes a place of join token `name` for `nodeId` (check-and-set against other enrolments at
 * the same moment). Returns why not when it may not; a record that is not one refuses.
 */
export async function claimJoin(consulHttp: string, token: string | undefined, name: string, nodeId: string, now: number): Promise<string | undefined> {
  const consul = consulClient(consulHttp, token);
  for (let attempt = 0; attempt < 5; attempt++) {
    const item = (await consul.kv.get(JOINS_PREFIX + name)) as KvItem | null;
    let record: JoinRecord | undefined;
    if (item?.Value) {
      let x: unknown;
      try { x = JSON.parse(item.Value); } catch { x = undefined; }
      const why = whyNot(JoinRecordSchema, x);
      if (why) return `the cluster's record of this join token is not valid (${why})`;
      record = x as JoinRecord;
    }
    const d = decideJoin(record, nodeId, now);
    if (!d.ok) return d.why;
    if (await consul.kv.set({ key: JOINS_PREFIX + name, value: JSON.stringify(d.record), cas: item!.ModifyIndex })) return undefined;
  }
  return 'the join token\'s record kept changing while this node enrolled; try again';
}

/** Gives a place back when the certificate could not be signed after all. */
export async function unclaimJoin(consulHttp: string, token: string | undefined, name: string, nodeId: string): Promise<void> {
  const consul = consulClient(consulHttp, token);
  for (let attempt = 0; attempt < 5; attempt++) {
    const item = (await consul.kv.get(JOINS_PREFIX + name)) as KvItem | null;
    if (!item?.Value) return;
    let x: JoinRecord;
    try { x = JSON.parse(item.Value) as JoinRecord; } catch { return; }
    if (whyNot(JoinRecordSchema, x) || !x.enrolled.includes(nodeId)) return;
    if (await consul.kv.set({ key: JOINS_PREFIX + name, value: JSON.stringify({ ...x, enrolled: x.enrolled.filter((n) => n !== nodeId) }), cas: item.ModifyIndex })) return;
  }
}
