/**
 * A burst node's first boot, from the user data the controller renders: cloud-init's own schema
 * validator accepts it; its install script gets Prescient from each source (and refuses a tarball
 * whose checksum is wrong before anything is unpacked); its boot script asks each cloud's metadata
 * service who the instance is and starts a real agent that registers with a real leader as that
 * instance, at the address the metadata service gave. The metadata service is the only fake
 * (test/helpers/metadata-service.ts): 169.254.169.254 cannot be reached from here.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { burstTemplate, renderUserData, type InstallSource, type UserDataValues } from '../../coordinator/burst/index.js';
import { freePort } from '../../deploy/stack/index.js';
import { bootBurstNode, cloudInitSchema, finished, unpackUserData } from '../helpers/burst-node.js';
import { coordinator, identity, startStack, waitFor, type TestStack } from '../helpers/cluster.js';
import { pkiDirOf } from '../../shared/index.js';
import { startMetadataService, type MetadataProvider } from '../helpers/metadata-service.js';

let s: TestStack;
const scratch = mkdtempSync(path.join(os.tmpdir(), 'prescient-boot-'));

test.before(async () => { s = await startStack('burst-boot'); });
test.after(async () => {
  await s?.down();
  rmSync(scratch, { recursive: true, force: true });
});

const values = (o: Partial<UserDataValues> = {}): UserDataValues => ({
  provider: 'aws', cluster: 'boot-test', endpoints: s.endpoints, metadata_url: 'http://169.254.169.254', agent_port: 7070,
  install: { source: 'image' }, agent_args: ['--shape-interfaces', '', '--cores', '0-1', '--memory-gb', '2'], ...o,
});

const SOURCES: InstallSource[] = [
  { source: 'image' },
  { source: 'git', url: 'https://git.example.com/prescient.git', ref: 'v0.4.0' },
  { source: 'tarball', url: 'https://artifacts.example.com/prescient-0.4.0.tar.gz?sig=a&b=c', sha256: 'ab'.repeat(32) },
];

test("the user data for every provider and install source passes cloud-init's own schema check, and a broken document does not", () => {
  for (const provider of ['aws', 'gcp', 'azure']) {
    for (const install of SOURCES) {
      const r = cloudInitSchema(renderUserData(burstTemplate(), values({ provider, install })));
      assert.ok(r.valid, `${provider} ${install.source}: ${r.output}`);
    }
  }
  const broken = cloudInitSchema('#cloud-config\nwrite_files:\n  - path: /etc/x\n    mode: 7\nruncmd: 5\n');
  assert.not.ok(broken.valid);
  assert.match(broken.output, /runcmd: 5 is not of type 'array'/);
});

test('each cloud\'s metadata service names the instance and its address; the agent the boot script starts registers as that instance there', async () => {
  const c = await coordinator(s, 'c1');
  await waitFor('c1 leads', () => c.isLeader() && c.leader());
  try {
    for (const provider of ['aws', 'gcp', 'azure'] as MetadataProvider[]) {
      const md = await startMetadataService(provider);
      const id = `${provider}-instance-${Math.random().toString(36).slice(2, 8)}`;
      md.instance = { id, address: '127.0.0.1' };
      const port = await freePort();
      // An image that carries the node's certificate (the enrolment a launch carries instead is
      // coordinator/burst's, tested in burst-controller.test.ts): the CA certificate and the pair.
      identity(s, 'node', id);
      const nodePki = path.join(scratch, id, 'pki');
      mkdirSync(path.join(nodePki, 'node'), { recursive: true });
      cpSync(path.join(pkiDirOf(s.endpoints), 'ca.crt'), path.join(nodePki, 'ca.crt'));
      cpSync(path.join(pkiDirOf(s.endpoints), 'node', id), path.join(nodePki, 'node', id), { recursive: true });
      const node = await bootBurstNode(renderUserData(burstTemplate(), values({ provider, metadata_url: md.url, agent_port: port })), { stateDir: path.join(scratch, id) });
      try {
        assert.is(node.install.code, 0, node.install.output);
        const seen = await waitFor(`${id} in the ledger`, () => c.leader()!.burstView().snap.node(id), 60_000);
        assert.is(seen.capacity.address, `127.0.0.1:${port}`, 'the leader dials the agent at the metadata service\'s address and the configured port');
        assert.equal(seen.capacity.core_ids, [0, 1], 'the agent arguments reached the agent');
        assert.ok(md.requests.every((r) => r.endsWith(' 200')), `${provider}: every metadata read answered: ${md.requests.join(', ')}`);
      } finally {
        await node.stop();
        await md.stop();
      }
    }
  } finally {
    await c.stop();
  }
});

test('a metadata service that cannot say who the instance is stops the boot with a clear error, and no agent starts', async () => {
  const md = await startMetadataService('aws'); // no instance set: every read is 404
  const node = await bootBurstNode(renderUserData(burstTemplate(), values({ metadata_url: md.url })), { stateDir: path.join(scratch, 'no-id') });
  try {
    assert.is(await node.exited, 1);
    assert.match(node.output(), /prescient-burst-node: the metadata service at http:\/\/127\.0\.0\.1:\d+ gave no instance-id/);
  } finally {
    await node.stop();
    await md.stop();
  }
});

test('an image without Prescient fails the install with a clear error', async () => {
  const node = await bootBurstNode(renderUserData(burstTemplate(), values()), { stateDir: path.join(scratch, 'no-cli'), withCli: false });
  assert.is(node.install.code, 1);
  assert.match(node.install.output, /prescient-install: the image has no prescient command/);
  assert.is(node.proc, undefined);
});

/** A tree whose deploy/install.sh records that it ran, and with what. */
function payload(dir: string, marker: string): void {
  mkdirSync(path.join(dir, 'deploy'), { recursive: true });
  writeFileSync(path.join(dir, 'deploy/install.sh'), `echo "${marker} $*" > "$(dirname "$0")/../installed"\n`);
}

/** Serves one file on loopback. */
async function serve(body: Buffer): Promise<{ url: string; stop(): Promise<void> }> {
  const server = http.createServer((_, res) => { res.writeHead(200); res.end(body); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/prescient.tar.gz`, stop: () => new Promise((r) => server.close(() => r())) };
}

test('a tarball is unpacked and installed only when it has the configured sha256', async () => {
  const tree = path.join(scratch, 'tar-tree', 'prescient-0.4.0');
  payload(tree, 'from the tarball');
  const tgz = path.join(scratch, 'prescient.tar.gz');
  execFileSync('tar', ['-czf', tgz, '-C', path.dirname(tree), 'prescient-0.4.0']);
  const bytes = readFileSync(tgz);
  const served = await serve(bytes);
  try {
    const good = createHash('sha256').update(bytes).digest('hex');
    for (const [sha256, ok] of [['0'.repeat(64), false], [good, true]] as const) {
      const srcDir = path.join(scratch, `src-${ok}`);
      const ud = renderUserData(burstTemplate(), values({ install: { source: 'tarball', url: served.url, sha256 } }));
      const { run, root } = unpackUserData(ud, { stateDir: scratch, srcDir });
      const r = await finished(run('usr/local/sbin/prescient-install'));
      rmSync(root, { recursive: true, force: true });
      if (ok) {
        assert.is(r.code, 0, r.output);
        assert.is(readFileSync(path.join(srcDir, 'installed'), 'utf8'), 'from the tarball --agent\n', 'unpacked, then its install.sh --agent ran');
      } else {
        assert.is(r.code, 1);
        assert.match(r.output, new RegExp(`does not have sha256 0{64} \\(got ${good}\\); nothing installed`));
        assert.not.ok(existsSync(srcDir), 'nothing unpacked');
      }
    }
  } finally {
    await served.stop();
  }
});

test('a git source is cloned and checked out at the configured ref before its install.sh --agent runs', async () => {
  const repo = path.join(scratch, 'repo');
  const git = (...args: string[]) => execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { stdio: 'pipe' });
  mkdirSync(repo);
  git('init', '-q');
  payload(repo, 'at v0.4.0');
  git('add', '.');
  git('commit', '-qm', 'v0.4.0');
  git('tag', 'v0.4.0');
  payload(repo, 'at main, after the tag');
  git('commit', '-qam', 'later');
  const srcDir = path.join(scratch, 'src-git');
  const ud = renderUserData(burstTemplate(), values({ install: { source: 'git', url: 'https://git.example.com/unused.git', ref: 'v0.4.0' } }));
  const { run, root } = unpackUserData(ud, { stateDir: scratch, srcDir });
  // The configuration only takes https/ssh URLs; the script clones whatever the env file says, here the local repository.
  const r = await finished(run('usr/local/sbin/prescient-install', { PRESCIENT_INSTALL_URL: repo }));
  rmSync(root, { recursive: true, force: true });
  assert.is(r.code, 0, r.output);
  assert.is(readFileSync(path.join(srcDir, 'installed'), 'utf8'), 'at v0.4.0 --agent\n');
});

test.run();
