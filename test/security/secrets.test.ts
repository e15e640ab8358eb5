/**
 * No secret in logs or errors: a webhook's credentials (its userinfo, a token in its path or
 * query) never appear in what the coordinator logs about it, whether the webhook answers, fails
 * or cannot be reached; its userinfo reaches the server as an Authorization header.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { redactText, redactUrl, type ModelAlert } from '../../shared/index.js';
import { postAlert } from '../../coordinator/feedback/index.js';

const SECRETS = ['alice', 's3cret', 'T0KEN-SECRET', 'key=abc', 'frag'];
const alert = { kind: 'error', message: 'duration_s of h264 on node n1', at: Date.now() } as unknown as ModelAlert;

test('a URL is shown as its scheme and host, whatever it carries', () => {
  assert.is(redactUrl('https://alice:s3cret@hooks.example.com:8443/services/T0KEN-SECRET?key=abc#frag'), 'https://hooks.example.com:8443/…');
  assert.is(redactUrl('http://127.0.0.1:9000'), 'http://127.0.0.1:9000');
  assert.is(redactUrl('not a url'), '(a URL that does not parse)');
  const line = redactText('webhook https://alice:s3cret@h.example/x/T0KEN-SECRET?key=abc failed, then nats://u:p@10.0.0.1:4222 too');
  for (const s of [...SECRETS, 'u:p']) assert.not.ok(line.includes(s), `${s} in ${line}`);
  assert.match(line, /https:\/\/h\.example\/… failed, then nats:\/\/10\.0\.0\.1:4222\/?…? too/);
  assert.is(redactText('no url here: C:\\path and a:b'), 'no url here: C:\\path and a:b');
});

test('a webhook that answers 500 is logged without its credentials, and got them as a header', async () => {
  let auth: string | undefined, url: string | undefined;
  const server = http.createServer((req, res) => { auth = req.headers.authorization; url = req.url; req.resume(); req.on('end', () => { res.statusCode = 500; res.end(); }); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const logs: string[] = [];
  try {
    await postAlert(`http://alice:s3cret@127.0.0.1:${port}/hook/T0KEN-SECRET?key=abc#frag`, alert, (m) => logs.push(m));
  } finally {
    server.close();
  }
  assert.is(auth, `Basic ${Buffer.from('alice:s3cret').toString('base64')}`);
  assert.is(url, '/hook/T0KEN-SECRET?key=abc', 'the server got the whole URL');
  assert.equal(logs, [`alert webhook http://127.0.0.1:${port}/… answered 500`]);
});

test('a webhook that cannot be reached is logged without its credentials', async () => {
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise((r) => server.close(r)); // nothing listens there now
  const logs: string[] = [];
  await postAlert(`http://alice:s3cret@127.0.0.1:${port}/hook/T0KEN-SECRET?key=abc`, alert, (m) => logs.push(m));
  assert.is(logs.length, 1);
  assert.match(logs[0], new RegExp(`^alert webhook http://127\\.0\\.0\\.1:${port}/… failed`));
  for (const s of SECRETS) assert.not.ok(logs[0].includes(s), `${s} in ${logs[0]}`);
});

test.run();
