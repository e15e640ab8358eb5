/** Loopback networking helpers: free ports and dependency-free probes. */
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';

export const LOOPBACK = '127.0.0.1';

/**
 * A port that is free on 127.0.0.1 for both TCP and UDP right now (Consul's serf ports use both).
 * The kernel picks it (port 0), so concurrent stacks get different ones; the small window
 * between picking and the service binding it surfaces as a start error naming the log.
 */
export async function freePort(avoid: ReadonlySet<number> = new Set()): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen(0, LOOPBACK, () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    if (avoid.has(port)) continue;
    const udpFree = await new Promise<boolean>((resolve) => {
      const sock = dgram.createSocket('udp4');
      sock.once('error', () => { sock.close(); resolve(false); });
      sock.bind(port, LOOPBACK, () => sock.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error('no free loopback port found after 50 attempts');
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
export function tcpGreeting(port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: LOOPBACK, port, timeout: timeoutMs });
    let buf = '';
    const done = (err?: Error) => { sock.destroy(); if (err) reject(err); else resolve(buf.split('\r\n')[0]); };
    sock.setEncoding('utf8');
    sock.on('data', (c: string) => { buf += c; if (buf.includes('\r\n')) done(); });
    sock.on('timeout', () => done(new Error(`no greeting on ${LOOPBACK}:${port} within ${timeoutMs} ms`)));
    sock.on('error', (e) => done(e));
    sock.on('end', () => done(new Error(`${LOOPBACK}:${port} closed the connection without a greeting`)));
  });
}
