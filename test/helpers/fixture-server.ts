/**
 * A loopback HTTP(S) server that replays recorded REST exchanges, so the GCP and Azure providers are
 * tested through their real SDKs down to the wire: the fake sits at the outermost boundary (a cloud
 * API that cannot be reached from here), never around the SDK objects.
 *
 * A fixture file (test/fixtures/<cloud>/<name>.json) is a script of exchanges:
 *
 *   { "description": "...",
 *     "exchanges": [ { "request":  { "method", "path", "query"?, "body"?, "headers"? },
 *                      "response": { "status", "headers"?, "body"? } } ] }
 *
 * A request must match an unconsumed exchange exactly: method, path, the whole query string (as a
 * key → value object) and the whole JSON body (deep equality; `body` absent means "no body"), plus
 * any headers the fixture names. Each exchange answers once. A request that matches none is answered
 * 599 and kept in `unmatched`, so a test fails with the request that was not expected. `{{base}}` in
 * a response header or body is replaced by the server's own origin (Azure's polling URLs).
 */
import http from 'node:http';
import https from 'node:https';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import * as assert from 'uvu/assert';
import { ProviderError } from '../../coordinator/burst/index.js';

export interface FixtureRequest {
  method: string;
  path: string;
  query?: Record<string, string>;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface FixtureResponse {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

export interface Exchange {
  request: FixtureRequest;
  response: FixtureResponse;
}

export interface Fixture {
  description?: string;
  exchanges: Exchange[];
}

/** A request as it arrived, for assertions. */
export interface ReceivedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));

/** Reads test/fixtures/<name>.json (e.g. `gcp/launch-spot`). */
export function loadFixture(name: string): Fixture {
  return JSON.parse(readFileSync(path.join(FIXTURES, `${name}.json`), 'utf8')) as Fixture;
}

/** A throwaway self-signed certificate for 127.0.0.1 (test-only; made with openssl, never committed). */
export function selfSignedCertificate(): { key: string; cert: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'prescient-fixture-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
    return { key: readFileSync(path.join(dir, 'key.pem'), 'utf8'), cert: readFileSync(path.join(dir, 'cert.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export class FixtureServer {
  readonly received: ReceivedRequest[] = [];
  readonly unmatched: ReceivedRequest[] = [];
  private pending: Exchange[] = [];
  private server!: http.Server;
  origin = '';

  private constructor(private readonly tls?: { key: string; cert: string }) {}

  /** Starts on a free loopback port; with `tls`, serves HTTPS with that certificate. */
  static async start(tls?: { key: string; cert: string }): Promise<FixtureServer> {
    const s = new FixtureServer(tls);
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => s.handle(req, res);
    s.server = tls ? https.createServer(tls, handler) : http.createServer(handler);
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    s.origin = `${tls ? 'https' : 'http'}://127.0.0.1:${s.port}`;
    return s;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Replaces the script with `fixture`'s exchanges and forgets what was received. */
  load(fixture: Fixture): void {
    this.pending = fixture.exchanges.map((e) => structuredClone(e));
    this.received.length = 0;
    this.unmatched.length = 0;
  }

  /** Exchanges the script still expects. */
  get remaining(): readonly Exchange[] {
    return this.pending;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fixture');
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = undefined;
      if (text.length > 0) {
        try { body = JSON.parse(text); } catch { body = text; }
      }
      const got: ReceivedRequest = { method: req.method ?? '', path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, body };
      this.received.push(got);
      const index = this.pending.findIndex((e) => matches(e.request, got));
      if (index < 0) {
        this.unmatched.push(got);
        res.writeHead(599, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 599, message: `fixture server: no exchange matches ${got.method} ${url.pathname}${url.search}` } }));
        return;
      }
      const [exchange] = this.pending.splice(index, 1);
      const out = exchange.response;
      const subst = (s: string) => s.split('{{base}}').join(this.origin);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(out.headers ?? {})) headers[k] = subst(v);
      if (out.body === undefined) {
        res.writeHead(out.status, headers);
        res.end();
        return;
      }
      res.writeHead(out.status, { 'content-type': 'application/json; charset=utf-8', ...headers });
      res.end(subst(JSON.stringify(out.body)));
    });
  }
}

function matches(want: FixtureRequest, got: ReceivedRequest): boolean {
  if (want.method !== got.method || want.path !== got.path) return false;
  if (!isDeepStrictEqual(want.query ?? {}, got.query)) return false;
  if (!isDeepStrictEqual(want.body, got.body)) return false;
  for (const [k, v] of Object.entries(want.headers ?? {})) {
    if (got.headers[k.toLowerCase()] !== v) return false;
  }
  return true;
}

/** The ProviderError a call was refused with; fails the test if it was not refused. */
export async function refusal(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, ProviderError);
    return e as ProviderError;
  }
  return assert.unreachable('the call was not refused') as never;
}

/** Every request was one the fixture expected, and every recorded exchange was used. */
export function assertAllConsumed(server: FixtureServer): void {
  assert.equal(server.unmatched.map((r) => `${r.method} ${r.path}`), [], 'every request was one the fixture expected');
  assert.equal(server.remaining.map((e) => `${e.request.method} ${e.request.path}`), [], 'every recorded exchange was used');
}
