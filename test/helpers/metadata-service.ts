/**
 * THE FAKE INSTANCE METADATA SERVICE, at the outermost boundary: what a cloud VM reaches at
 * 169.254.169.254, which this machine is not. A loopback HTTP server answering the few paths a
 * burst node's boot script reads, with each cloud's own guard: EC2's IMDSv2 session token (PUT,
 * then a header; 401 without it), GCE's `Metadata-Flavor: Google` (403 without it), Azure's
 * `Metadata: true` and api-version (400 without them). Burst configurations point `metadata_url`
 * at it, as one would at EC2's IPv6 endpoint.
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export type MetadataProvider = 'aws' | 'gcp' | 'azure';

export interface MetadataService {
  /** `http://127.0.0.1:PORT`, for the burst configuration's `metadata_url`. */
  url: string;
  /** The instance it describes; until set, every read is 404 (as for a VM still booting). */
  instance?: { id: string; address: string };
  /** Requests as `METHOD path status`. */
  requests: string[];
  stop(): Promise<void>;
}

export async function startMetadataService(provider: MetadataProvider): Promise<MetadataService> {
  const token = randomBytes(16).toString('hex');
  const requests: string[] = [];
  const svc: MetadataService = { url: '', requests, stop: async () => undefined };
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://metadata');
    const answer = (status: number, body = '', headers: Record<string, string> = {}) => {
      requests.push(`${req.method} ${u.pathname} ${status}`);
      res.writeHead(status, { 'content-type': 'text/plain', ...headers });
      res.end(body);
    };
    const x = svc.instance;
    if (provider === 'aws') {
      if (req.method === 'PUT' && u.pathname === '/latest/api/token') {
        return req.headers['x-aws-ec2-metadata-token-ttl-seconds'] ? answer(200, token) : answer(400, 'missing TTL');
      }
      if (req.headers['x-aws-ec2-metadata-token'] !== token) return answer(401);
      const value = { '/latest/meta-data/instance-id': x?.id, '/latest/meta-data/local-ipv4': x?.address }[u.pathname];
      return value ? answer(200, value) : answer(404);
    }
    if (provider === 'gcp') {
      if (req.headers['metadata-flavor'] !== 'Google') return answer(403, 'Missing Metadata-Flavor:Google header.');
      const value = { '/computeMetadata/v1/instance/name': x?.id, '/computeMetadata/v1/instance/network-interfaces/0/ip': x?.address }[u.pathname];
      return value ? answer(200, value, { 'metadata-flavor': 'Google' }) : answer(404);
    }
    if (req.headers.metadata !== 'true') return answer(400, '{"error":"Bad request. Required metadata header not specified"}');
    if (!u.searchParams.get('api-version')) return answer(400, '{"error":"Bad request. api-version was not specified"}');
    const value = {
      '/metadata/instance/compute/name': x?.id,
      '/metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress': x?.address,
    }[u.pathname];
    return value && u.searchParams.get('format') === 'text' ? answer(200, value) : answer(404);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  svc.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  svc.stop = () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); });
  return svc;
}
