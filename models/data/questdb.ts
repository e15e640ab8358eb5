/**
 * The small part of QuestDB's REST API Prescient uses (`/exec`), and the only way values get
 * into SQL text here: each is validated, then quoted.
 */

export interface QuestDbResult {
  columns: { name: string; type: string }[];
  dataset: unknown[][];
  count: number;
}

/** A value refused before it could reach SQL; `field` names the filter it came from. */
export class QueryParamError extends Error {
  constructor(readonly field: string, reason: string) {
    super(`${field}: ${reason}`);
    this.name = 'QueryParamError';
  }
}

/**
 * The base URL without its user and password, and those as a Basic Authorization header (fetch
 * refuses a URL that carries credentials; the cluster's QuestDB asks for them).
 */
export function questdbTarget(httpBase: string): { base: string; headers: Record<string, string> } {
  const u = new URL(httpBase);
  if (!u.username) return { base: httpBase.replace(/\/$/, ''), headers: {} };
  const auth = Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64');
  u.username = '';
  u.password = '';
  return { base: u.toString().replace(/\/$/, ''), headers: { authorization: `Basic ${auth}` } };
}

/** Runs one SQL statement on QuestDB's REST endpoint. */
export async function questdbExec(httpBase: string, sql: string, timeoutMs = 10_000): Promise<QuestDbResult> {
  const { base, headers } = questdbTarget(httpBase);
  const res = await fetch(`${base}/exec?query=${encodeURIComponent(sql)}`, { headers, signal: AbortSignal.timeout(timeoutMs) });
  if (res.status === 401) throw new Error('QuestDB: 401, the cluster\'s QuestDB password is missing or wrong (secret `questdb`, PRESCIENT_QUESTDB_PASSWORD)');
  const body = (await res.json()) as { error?: string; columns?: QuestDbResult['columns']; dataset?: unknown[][]; count?: number };
  if (!res.ok || body.error) throw new Error(`QuestDB: ${body.error ?? res.status}`);
  return { columns: body.columns ?? [], dataset: body.dataset ?? [], count: body.count ?? 0 };
}

/** Rows as objects keyed by column name. */
export async function questdbQuery(httpBase: string, sql: string, timeoutMs?: number): Promise<Record<string, unknown>[]> {
  const r = await questdbExec(httpBase, sql, timeoutMs);
  return r.dataset.map((row) => Object.fromEntries(r.columns.map((c, i) => [c.name, row[i]])));
}

/** Node ids, job ids, codecs and the like: what Prescient itself ever puts in a SYMBOL column. */
const SYMBOL_VALUE = /^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$/;

/** A SYMBOL value as a SQL literal; anything outside the symbol alphabet is refused, not escaped. */
export function sqlSymbol(field: string, value: string): string {
  if (typeof value !== 'string' || !SYMBOL_VALUE.test(value)) {
    throw new QueryParamError(field, `${JSON.stringify(value)} is not a symbol value (letters, digits and . _ : @ + -, up to 128)`);
  }
  return `'${value}'`;
}

/** A point in time (Date, epoch ms or an ISO-8601 string with a zone) as a SQL timestamp literal. */
export function sqlTimestamp(field: string, value: Date | number | string): string {
  if (typeof value === 'string' && !/^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2}))?$/.test(value)) {
    throw new QueryParamError(field, `${JSON.stringify(value)} is not an ISO-8601 date or date-time with a zone`);
  }
  const d = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(d.getTime())) throw new QueryParamError(field, `${JSON.stringify(value)} is not a valid time`);
  // toISOString's output is a fixed alphabet: safe to quote as is.
  return `'${d.toISOString()}'`;
}
