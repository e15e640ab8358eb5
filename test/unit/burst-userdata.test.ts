/** What a burst node boots with: the rendered cloud-config (coordinator/burst/userdata.ts) and its GCE startup-script form. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import YAML from 'yaml';
import { burstTemplate, renderUserData, toStartupScript, type UserDataValues } from '../../coordinator/burst/index.js';

const ENDPOINTS = { nats_url: 'nats://10.0.0.5:4222', consul_http: '10.0.0.5:8500', questdb_http: 'http://10.0.0.5:9000', questdb_pg: '10.0.0.5:8812' };
const VALUES: UserDataValues = {
  provider: 'aws', cluster: 'prod', endpoints: ENDPOINTS, metadata_url: 'http://169.254.169.254', agent_port: 7070,
  install: { source: 'git', url: 'https://git.example.com/prescient.git', ref: 'v0.4.0' }, agent_args: ['--accounted-only', 'bandwidth'],
};

type Doc = { packages: string[]; write_files: Array<{ path: string; content: string; permissions: string }>; runcmd: unknown[] };
const parse = (u: string) => YAML.parse(u) as Doc;
const file = (d: Doc, path: string) => d.write_files.find((f) => f.path === path)!.content;
/** The env file as key → value. */
const env = (d: Doc) => Object.fromEntries(file(d, '/etc/prescient/burst.env').trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

test('the user data is cloud-config whose env file names the provider, cluster, endpoints, metadata service, port and install source', () => {
  const u = renderUserData(burstTemplate(), VALUES);
  assert.ok(u.startsWith('#cloud-config\n'));
  assert.not.match(u, /\{\{/);
  assert.equal(env(parse(u)), {
    PRESCIENT_PROVIDER: 'aws', PRESCIENT_CLUSTER: 'prod',
    PRESCIENT_NATS_URL: 'nats://10.0.0.5:4222', PRESCIENT_CONSUL_HTTP: '10.0.0.5:8500', PRESCIENT_QUESTDB_HTTP: 'http://10.0.0.5:9000', PRESCIENT_QUESTDB_PG: '10.0.0.5:8812',
    PRESCIENT_METADATA_URL: 'http://169.254.169.254', PRESCIENT_AGENT_PORT: '7070',
    PRESCIENT_INSTALL_SOURCE: 'git', PRESCIENT_INSTALL_URL: 'https://git.example.com/prescient.git', PRESCIENT_INSTALL_REF: 'v0.4.0', PRESCIENT_INSTALL_SHA256: "''",
    PRESCIENT_SRC_DIR: '/opt/prescient/src', PRESCIENT_STATE_DIR: '/var/lib/prescient', PRESCIENT_ENROL_BUNDLE: "''",
  });
  // It holds the launch's enrolment key and the cluster's QuestDB password: root's only.
  assert.is(parse(u).write_files.find((f) => f.path === '/etc/prescient/burst.env')!.permissions, '0600');
  const enrolled = env(parse(renderUserData(burstTemplate(), { ...VALUES, enrol_bundle: 'eyJjYSI6Ii0t+/=' })));
  assert.is(enrolled.PRESCIENT_ENROL_BUNDLE, 'eyJjYSI6Ii0t+/=', 'the bundle reaches the env file as it is (base64 needs no quoting)');
});

test('the boot script asks the metadata service for the id and private address, and the agent serves gRPC there', () => {
  const script = file(parse(renderUserData(burstTemplate(), VALUES)), '/usr/local/sbin/prescient-burst-node');
  assert.match(script, /exec prescient agent --node-id "\$node_id" --grpc-host "\$address" --grpc-port "\$\{PRESCIENT_AGENT_PORT:\?\}" --accounted-only bandwidth\n/);
  assert.match(script, /meta-data\/\$1/);
  assert.match(script, /id_key=instance-id; address_key=local-ipv4/);
  assert.not.match(script, /hostname -I/, 'the address is the cloud\'s, not whichever interface comes first');
  const unit = file(parse(renderUserData(burstTemplate(), VALUES)), '/etc/systemd/system/prescient-agent.service');
  assert.match(unit, /EnvironmentFile=\/etc\/prescient\/burst\.env/);
});

test('each install source fills only its own settings', () => {
  const image = env(parse(renderUserData(burstTemplate(), { ...VALUES, install: { source: 'image' } })));
  assert.equal([image.PRESCIENT_INSTALL_SOURCE, image.PRESCIENT_INSTALL_URL, image.PRESCIENT_INSTALL_REF], ['image', "''", "''"]);
  const tar = env(parse(renderUserData(burstTemplate(), { ...VALUES, install: { source: 'tarball', url: 'https://a.example.com/p.tgz?x=1&y=2', sha256: 'ab'.repeat(32) } })));
  assert.equal([tar.PRESCIENT_INSTALL_SOURCE, tar.PRESCIENT_INSTALL_URL, tar.PRESCIENT_INSTALL_SHA256], ['tarball', "'https://a.example.com/p.tgz?x=1&y=2'", 'ab'.repeat(32)]);
});

test('user data values are shell-quoted and an unknown placeholder is refused', () => {
  const u = renderUserData('C={{cluster}} A={{agent_args}}', { ...VALUES, cluster: 'a b', agent_args: ["x'; rm -rf /"] });
  assert.is(u, `C='a b' A='x'"'"'; rm -rf /'`);
  assert.throws(() => renderUserData('{{secret}}', VALUES), /unknown placeholder \{\{secret\}\}/);
  assert.throws(() => renderUserData('{{cluster}}', { ...VALUES, cluster: 'a\nb' }), /line break/);
});

test('the GCE startup script writes the same files, installs the same packages and runs the same commands, and is valid bash', () => {
  const cloudConfig = renderUserData(burstTemplate(), { ...VALUES, provider: 'gcp' });
  const doc = parse(cloudConfig);
  const script = toStartupScript(cloudConfig);
  assert.ok(script.startsWith('#!/bin/bash\n'));
  for (const f of doc.write_files) {
    assert.ok(script.includes(`cat > '${f.path}' <<'PRESCIENT_EOF_`), f.path);
    assert.ok(script.includes(f.content.replace(/\n$/, '')), `${f.path} content`);
    assert.ok(script.includes(`chmod '${f.permissions}' '${f.path}'`), `${f.path} mode`);
  }
  assert.match(script, /apt-get install -y -qq 'curl' 'ca-certificates' 'git'/);
  assert.match(script, /'systemctl' 'enable' '--now' 'prescient-agent\.service'\n$/);
  const syntax = spawnSync('bash', ['-n'], { input: script });
  assert.is(syntax.status, 0, syntax.stderr.toString());
});

test('a cloud-config module the startup script cannot do is refused, not dropped', () => {
  assert.throws(() => toStartupScript('#cloud-config\nusers: [default]\nruncmd: [[true]]\n'), /cannot turn cloud-config module\(s\) users into a startup script/);
});

test.run();
