/**
 * The revoked list: certificates still within their dates that no member may accept. It is kept
 * in two places. `revoked.json` in the certificates folder is written by `prescient certs revoke`
 * on the CA host. Consul's `prescient/pki/revoked` key carries the same list to every other host:
 * only the management or coordinator token may write it, and anyone may read it.
 *
 * Every member that serves or dials gRPC follows the key with a blocking query, and refuses what
 * either list names. What it reads is checked entry by entry: a value that is not a list of
 * fingerprints is ignored and logged, and the last good list stays.
 */
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { consulClient, watchKey, type KvItem } from '../discovery.js';
import { shortText, v, whyNot } from '../records.js';
import type { Log } from '../log.js';

export const REVOKED_KEY = 'prescient/pki/revoked';
/** A SHA-256 fingerprint as Node's X509Certificate writes it: 32 hex bytes joined by colons. */
const FINGERPRINT = /^[0-9A-F]{2}(?::[0-9A-F]{2}){31}$/;
/** More entries than any cluster revokes: a value past this is not a revoked list. */
const MAX_ENTRIES = 100_000;

export interface RevokedEntry { role: string; name: string; fingerprint256: string; revoked_at: string }

const RevokedList = v.pipe(v.array(v.object({
  fingerprint256: v.pipe(v.string(), v.regex(FINGERPRINT, 'a SHA-256 fingerprint')),
  role: shortText, name: shortText, revoked_at: shortText,
})), v.maxLength(MAX_ENTRIES));

/** The revoked list in `text`, checked entry by entry, or why it is not one. */
export function parseRevokedList(text: string): RevokedEntry[] | string {
  let x: unknown;
  try { x = JSON.parse(text); } catch { return 'not JSON'; }
  return whyNot(RevokedList, x) ?? (x as RevokedEntry[]);
}

const revokedFile = (dir: string) => path.join(dir, 'revoked.json');
let fileCache: { file: string; mtimeMs: number; set: ReadonlySet<string>; checked_at: number } | undefined;
/** How long a read of `revoked.json` is trusted before the file is looked at again (every gRPC call asks). */
const RECHECK_MS = 250;
/** The cluster's list as Consul last gave it (followRevoked). */
let cluster: ReadonlySet<string> = new Set();

/**
 * The SHA-256 fingerprints of revoked certificates: this host's `revoked.json` (read again
 * whenever it changes) and the cluster's list in Consul, as followed.
 */
export function revokedFingerprints(dir: string): ReadonlySet<string> {
  const local = localRevoked(dir);
  if (!cluster.size) return local;
  if (!local.size) return cluster;
  return new Set([...local, ...cluster]);
}

function localRevoked(dir: string): ReadonlySet<string> {
  const file = revokedFile(dir);
  const now = Date.now();
  if (fileCache?.file === file && now - fileCache.checked_at < RECHECK_MS) return fileCache.set;
  let mtimeMs: number;
  try { mtimeMs = statSync(file).mtimeMs; } catch { mtimeMs = -1; }
  if (fileCache?.file === file && fileCache.mtimeMs === mtimeMs) { fileCache.checked_at = now; return fileCache.set; }
  const set: ReadonlySet<string> = mtimeMs < 0 ? new Set() : new Set(readLocal(dir).map((x) => x.fingerprint256));
  fileCache = { file, mtimeMs, set, checked_at: now };
  return set;
}

/** This host's revoked list; a file that is not one reads as empty. */
export function readLocal(dir: string): RevokedEntry[] {
  let text: string;
  try { text = readFileSync(revokedFile(dir), 'utf8'); } catch { return []; }
  const list = parseRevokedList(text);
  return typeof list === 'string' ? [] : list;
}

/** Writes this host's list whole (renamed into place). */
export function writeLocal(dir: string, list: RevokedEntry[]): void {
  const tmp = `${revokedFile(dir)}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(list, null, 2)}\n`, { mode: 0o644 });
  renameSync(tmp, revokedFile(dir));
}

/** Both lists as one, each fingerprint once (the earlier entry kept). */
function merged(a: RevokedEntry[], b: RevokedEntry[]): RevokedEntry[] {
  const seen = new Set<string>();
  return [...a, ...b].filter((e) => !seen.has(e.fingerprint256) && seen.add(e.fingerprint256));
}

/**
 * Adds this host's list to Consul's (with a token that may write it), by check-and-set so two
 * revocations at once both stay. Returns how many entries the cluster's list holds after.
 */
export async function publishRevoked(consulHttp: string, token: string, dir: string): Promise<number> {
  const consul = consulClient(consulHttp, token);
  for (let attempt = 0; attempt < 5; attempt++) {
    const item = (await consul.kv.get(REVOKED_KEY)) as KvItem | null;
    const have = item?.Value ? parseRevokedList(item.Value) : [];
    // A value that is not a list is replaced: only a token holder could have written it, and the local list is the truth.
    const list = merged(typeof have === 'string' ? [] : have, readLocal(dir));
    if (typeof have !== 'string' && list.length === have.length && item) return list.length;
    const ok = await consul.kv.set({ key: REVOKED_KEY, value: JSON.stringify(list), cas: item?.ModifyIndex ?? 0 });
    if (ok) return list.length;
  }
  throw new Error(`${REVOKED_KEY} kept changing while it was written; run the command again`);
}

/**
 * Follows Consul's revoked list (blocking queries, backoff on errors): from the first answer on,
 * revokedFingerprints includes it. Returns the function that stops following.
 */
export function followRevoked(consulHttp: string, log: Log): () => void {
  // While Consul is unreachable gRPC keeps the last good list.
  return watchKey(consulHttp, REVOKED_KEY, (item) => {
    if (!item?.Value) { cluster = new Set(); return; }
    const list = parseRevokedList(item.Value);
    if (typeof list === 'string') { log(`${REVOKED_KEY} ignored: ${list}; the last good list (${cluster.size} entries) stays`, 'warn'); return; }
    cluster = new Set(list.map((e) => e.fingerprint256));
  }, 10_000);
}
