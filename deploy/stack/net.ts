/** Networking helpers: free ports on the stack's address and dependency-free probes. */
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { ConfigError } from '../../shared/errors.js';

export const LOOPBACK = '127.0.0.1';

/**
 * Checks an address for the stack to serve on: an IPv4 address of this host (every service
 * binds to it and advertises it, so a wildcard or a name would leave clients nothing to dial).
 */
export function checkStackHost(host: string): string {
  const ok = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (!ok || ok.slice(1).some((o) => Number(o) > 255)) throw new ConfigError('--host', `must be an IPv4 address of this host, got ${JSON.stringify(host)}`);
  if (host === '0.0.0.0') throw new ConfigError('--host', 'must be an address clients can dial, not the wildcard 0.0.0.0 (services advertise it)');
  const mine = Object.values(os.networkInterfaces()).flat().some((i) => i?.family === 'IPv4' && i.address === host);
  if (!mine) throw new ConfigError('--host', `${host} is not an address of this host (see \`ip -4 addr\`)`);
  return host;
}

/**
 * A port that is free on `host` for both TCP and UDP right now (Consul's serf ports use both).
 * The kernel picks it (port 0), so concurrent stacks get different ones; the small window
 * between picking and the service binding it surfaces as a start error naming the log.
 */
export async function freePort(host: string, avoid: ReadonlySet<number> = new Set()): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen(0, host, () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    if (avoid.has(port)) continue;
    const udpFree = await new Promise<boolean>((resolve) => {
      const sock = dgram.createSocket('udp4');
      sock.once('error', () => { sock.close(); resolve(false); });
      sock.bind(port, host, () => sock.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error(`no free port on ${host} found after 50 attempts`);
}

/**
 * GET without connection pooling (`agent: false`), so a probe never keeps the caller's event
 * loop alive or reuses a socket to a process that has since been replaced.
 */
export function httpGet(url: string, timeoutMs: number, headers?: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** Connects over TCP and returns the first line the server sends (NATS greets with `INFO {…}`). */
export function tcpGreeting(host: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port, timeout: timeoutMs });
    let buf = '';
    const done = (err?: Error) => { sock.destroy(); if (err) reject(err); else resolve(buf.split('\r\n')[0]); };
    sock.setEncoding('utf8');
    sock.on('data', (c: string) => { buf += c; if (buf.includes('\r\n')) done(); });
    sock.on('timeout', () => done(new Error(`no greeting on ${host}:${port} within ${timeoutMs} ms`)));
    sock.on('error', (e) => done(e));
    sock.on('end', () => done(new Error(`${host}:${port} closed the connection without a greeting`)));
  });
}
