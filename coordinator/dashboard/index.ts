/**
 * The web dashboard (issue 20): a coordinator serves a page (coordinator/dashboard/web, bundled
 * by esbuild into dist) and its data: `GET /api/snapshot` (nodes, queue, jobs, models, burst, as
 * JSON) and `GET /api/events`, a server-sent event stream with a snapshot every couple of seconds
 * and each job event as it arrives on NATS. Any coordinator serves the same view, a standby
 * included: it is read from the cluster's shared state (the leader's saved ledger, the task
 * records and the events stream in JetStream), not from the leader's memory.
 *
 * Read-only unless the request carries the admin token (`Authorization: Bearer …`, the file
 * STATE/pki/secrets/dashboard on the coordinator's host): then `POST /api/jobs/ID/cancel` cancels
 * a job and stops a live channel. No cross-origin access is granted, so a page elsewhere cannot
 * send the header; the token is compared in constant time.
 *
 * The data comes through `DashboardSource` (built by the CLI, the composition root, from the
 * same views `prescient nodes`, `queue`, `model status` and `scale status` print).
 */
import http from 'node:http';
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { TaskEvent } from '../../shared/index.js';
import { JobBoard, type JobView } from './jobs.js';
import type { Log } from '../../shared/log.js';

export { JobBoard, type JobView } from './jobs.js';

/** What the page shows, as of `at`. */
export interface DashboardSnapshot {
  at: number;
  leader: { id: string; address: string } | null;
  nodes: unknown[];
  queue: unknown[];
  jobs: JobView[];
  models: unknown;
  burst: unknown;
}

export interface DashboardSource {
  /** Everything but the jobs (the server keeps those from the events). */
  snapshot(): Promise<Omit<DashboardSnapshot, 'jobs' | 'at'>>;
  /** Calls `onEvent` with every job event from `sinceMs` on, live; returns how to stop. */
  follow(sinceMs: number, onEvent: (e: TaskEvent) => void): { stop(): Promise<void> };
  /** Asks the leader to cancel the job (a live channel: stop it); says what was done. */
  cancel(jobId: string): Promise<{ ok: boolean; message: string }>;
}

export interface DashboardOptions {
  source: DashboardSource;
  host: string;
  port: number;
  /** Enables cancel and stop for requests that carry it. */
  adminToken?: string;
  /** The bundled page (index.html, app.js, app.css); default: next to this module in dist. */
  webDir?: string;
  /** How often a snapshot is taken and pushed (default 2 s). */
  snapshotMs?: number;
  /** Job events from this long ago are shown at start (default an hour). */
  historyMs?: number;
  log?: Log;
}

export interface Dashboard {
  address: string;
  close(): Promise<void>;
}

const JOB_ID = /^[A-Za-z0-9_-]{1,64}$/;
const STATIC: Record<string, string> = { '/': 'index.html', '/index.html': 'index.html', '/app.js': 'app.js', '/app.css': 'app.css' };
const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'cache-control': 'no-store',
};

export async function serveDashboard(o: DashboardOptions): Promise<Dashboard> {
  const log = o.log ?? (() => undefined);
  const webDir = o.webDir ?? path.join(path.dirname(new URL(import.meta.url).pathname), 'web');
  if (!existsSync(path.join(webDir, 'index.html'))) throw new Error(`the dashboard's page is not built in ${webDir} (npm run build bundles it)`);
  const board = new JobBoard();
  const clients = new Set<http.ServerResponse>();
  const send = (res: http.ServerResponse, event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);

  let last: DashboardSnapshot | undefined;
  let taking: Promise<DashboardSnapshot> | undefined;
  const snapshot = (): Promise<DashboardSnapshot> => (taking ??= o.source.snapshot()
    .then((s) => (last = { ...s, at: Date.now(), jobs: board.list() }))
    .finally(() => { taking = undefined; }));

  const isAdmin = (req: http.IncomingMessage) => {
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    if (!m || !o.adminToken) return false;
    const a = Buffer.from(m[1]), b = Buffer.from(o.adminToken);
    return a.length === b.length && timingSafeEqual(a, b);
  };
  const json = (res: http.ServerResponse, status: number, body: unknown) => res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json' }).end(JSON.stringify(body));

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://dashboard');
    const p = url.pathname;
    if (req.method === 'GET' && STATIC[p]) {
      const file = path.join(webDir, STATIC[p]);
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': TYPES[path.extname(file)] }).end(readFileSync(file));
      return;
    }
    if (req.method === 'GET' && p === '/api/snapshot') {
      snapshot().then((s) => json(res, 200, s), (e: Error) => json(res, 503, { error: `could not read the cluster's state: ${e.message}` }));
      return;
    }
    if (req.method === 'GET' && p === '/api/whoami') { json(res, 200, { admin: isAdmin(req), admin_enabled: !!o.adminToken }); return; }
    if (req.method === 'GET' && p === '/api/events') {
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream', connection: 'keep-alive' });
      res.write('retry: 2000\n\n');
      clients.add(res);
      req.on('close', () => clients.delete(res));
      (last ? Promise.resolve(last) : snapshot()).then((s) => send(res, 'snapshot', s), () => undefined);
      return;
    }
    const cancel = /^\/api\/jobs\/([^/]+)\/(cancel|stop)$/.exec(p);
    if (cancel && req.method === 'POST') {
      if (!o.adminToken) { json(res, 403, { error: 'this dashboard is read-only: the coordinator has no admin token' }); return; }
      if (!isAdmin(req)) { json(res, 401, { error: 'cancel and stop need the admin token (Authorization: Bearer …; STATE/pki/secrets/dashboard on the coordinator\'s host)' }); return; }
      const id = decodeURIComponent(cancel[1]);
      if (!JOB_ID.test(id)) { json(res, 400, { error: `job id must match ${JOB_ID}` }); return; }
      o.source.cancel(id).then((r) => json(res, r.ok ? 202 : 409, r), (e: Error) => json(res, 503, { error: e.message }));
      return;
    }
    if (p.startsWith('/api/')) { json(res, req.method === 'GET' || req.method === 'POST' ? 404 : 405, { error: `no ${req.method} ${p}` }); return; }
    res.writeHead(404, { ...SECURITY_HEADERS, 'content-type': 'text/plain' }).end('not found\n');
  });
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(o.port, o.host, () => { server.off('error', reject); resolve(); }); });
  // Fed once it listens: a port in use leaves nothing running.
  const follower = o.source.follow(Date.now() - (o.historyMs ?? 3600_000), (e) => {
    const j = board.apply(e);
    for (const c of clients) send(c, 'job', j);
  });
  const ticker = setInterval(() => {
    if (!clients.size) return;
    snapshot().then((s) => { for (const c of clients) send(c, 'snapshot', s); }, (e: Error) => log(`dashboard snapshot failed: ${e.message}`, 'warn'));
  }, o.snapshotMs ?? 2000);
  const a = server.address() as AddressInfo;
  return {
    address: `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
    async close() {
      clearInterval(ticker);
      for (const c of clients) c.end();
      clients.clear();
      await follower.stop();
      await new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); });
    },
  };
}
