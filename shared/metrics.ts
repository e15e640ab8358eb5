/**
 * Prometheus metrics (prom-client) served over HTTP by a coordinator or an agent: `GET /metrics`
 * in the text format, `GET /healthz`. Each member keeps its own registry (never prom-client's
 * global one, so two members in one process, as in `prescient dev` and the tests, do not mix).
 *
 * Values that are state (queue depth, reservations, health) are read when Prometheus scrapes,
 * through each gauge's `collect`, so the hot path pays nothing for them; counters and histograms
 * are incremented where things happen.
 *
 * Metrics are read-only and carry no job content (ids, classes, node names and figures only), so
 * the endpoint has no authentication: it binds to loopback unless given an address
 * (`--metrics HOST:PORT`), as node_exporter and Nomad's do.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NatsConnection } from 'nats';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { requestTarget } from './redact.js';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** A registry with the process's own figures (CPU, memory, event-loop lag, GC), every sample labelled with `labels`. */
export function memberRegistry(labels: Record<string, string>): Registry {
  const r = new Registry();
  r.setDefaultLabels(labels);
  collectDefaultMetrics({ register: r });
  return r;
}

export { parseListen } from './config.js';

export interface MetricsServer {
  /** `host:port` it listens on. */
  address: string;
  close(): Promise<void>;
}

/** Serves `registry` on `GET /metrics` (and `GET /healthz`: 200 "ok") at host:port. */
export async function serveMetrics(registry: Registry, host: string, port: number): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, { allow: 'GET, HEAD' }).end(); return; }
    if (url === '/healthz') { res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n'); return; }
    if (url !== '/metrics') { res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n'); return; }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (e: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`could not collect: ${e.message}\n`),
    );
  });
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, host, () => { server.off('error', reject); resolve(); }); });
  const a = server.address() as AddressInfo;
  return {
    address: `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

// ── the cluster's services, seen from a member ─────────────────────────────────────────────

export type Dependency = 'nats' | 'consul' | 'questdb';
export type HealthCheck = () => Promise<boolean>;

const within = <T>(ms: number, p: Promise<T>): Promise<T> =>
  Promise.race([p, new Promise<T>((_, rej) => setTimeout(() => rej(new Error('timed out')), ms).unref())]);

/** Consul's address is `host:port` in the stack's endpoints; a URL is taken as it is. */
const withScheme = (u: string) => (/^[a-z]+:\/\//i.test(u) ? u : `http://${u}`).replace(/\/$/, '');

async function answers(url: string, ms: number): Promise<boolean> {
  const t = requestTarget(url);
  const r = await fetch(t.url, { headers: t.headers, signal: AbortSignal.timeout(ms) });
  await r.arrayBuffer();
  return r.ok;
}

/** The checks for NATS (this member's own connection answers a ping), Consul (its leader is known) and QuestDB (answers a query). */
export function dependencyChecks(o: { nc?: () => NatsConnection | undefined; consulHttp: string; questdbHttp: string; timeoutMs?: number }): Record<Dependency, HealthCheck> {
  const ms = o.timeoutMs ?? 1000;
  return {
    nats: async () => { const nc = o.nc?.(); if (!nc || nc.isClosed()) return false; await within(ms, nc.flush()); return true; },
    consul: async () => {
      const t = requestTarget(`${withScheme(o.consulHttp)}/v1/status/leader`);
      const r = await fetch(t.url, { signal: AbortSignal.timeout(ms) });
      return r.ok && /"\S+"/.test(await r.text());
    },
    questdb: () => answers(`${withScheme(o.questdbHttp)}/exec?query=${encodeURIComponent('SELECT 1')}`, ms),
  };
}

/**
 * `prescient_dependency_up{service}`: 1 when the service answered this member at the last scrape,
 * 0 when it did not (or not within the check's timeout). Checks run at most every `minIntervalMs`.
 */
export function dependencyGauge(registry: Registry, checks: Record<string, HealthCheck>, minIntervalMs = 5000): void {
  let last = 0;
  let values: Record<string, number> = {};
  let running: Promise<void> | undefined;
  const refresh = async () => {
    const entries = await Promise.all(Object.entries(checks).map(async ([k, check]) => [k, await check().then((ok) => (ok ? 1 : 0), () => 0)] as const));
    values = Object.fromEntries(entries);
    last = Date.now();
  };
  new Gauge({
    name: 'prescient_dependency_up', help: 'Whether a service this member depends on answered it at the last check (1) or not (0)', labelNames: ['service'], registers: [registry],
    async collect() {
      if (Date.now() - last >= minIntervalMs) await (running ??= refresh().finally(() => { running = undefined; }));
      for (const [k, v] of Object.entries(values)) this.set({ service: k }, v);
    },
  });
}
