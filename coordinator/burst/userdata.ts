/**
 * What a burst instance boots with (deploy/cloud-init/burst-node.yaml): a pure rendering of the
 * template, so what each instance receives is tested byte for byte. Every value is one line,
 * shell-quoted; it lands in /etc/prescient/burst.env (read by bash and by systemd's
 * EnvironmentFile, which both take single quotes) or on the agent's command line.
 *
 * GCE runs a startup script rather than cloud-config on most images: `toStartupScript` turns the
 * rendered document into an equivalent bash script (packages, write_files, runcmd).
 */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import type { StackEndpoints } from '../../shared/index.js';

/** Where the template is (copied next to the build by deploy/scripts/copy-assets.mjs). */
export const BURST_TEMPLATE_URL = new URL('../../deploy/cloud-init/burst-node.yaml', import.meta.url);

/** Where a burst node gets Prescient from (burst configuration `install`). */
export type InstallSource =
  /** The image already has it (`prescient` on PATH): nothing is fetched at boot. */
  | { source: 'image' }
  /** A git repository at a fixed ref (tag or commit), so every node runs the leader's version. */
  | { source: 'git'; url: string; ref: string }
  /** A tarball (e.g. `git archive`), refused unless it has this sha256. */
  | { source: 'tarball'; url: string; sha256: string };

export interface UserDataValues {
  /** aws | gcp | azure: which metadata service the node asks who it is. */
  provider: string;
  cluster: string;
  endpoints: StackEndpoints;
  install: InstallSource;
  /** The cloud's instance metadata service, e.g. http://169.254.169.254. */
  metadata_url: string;
  /** Port the agent serves gRPC on (the leader dials it at the instance's private address). */
  agent_port: number;
  /** Extra `prescient agent` arguments, already split (each is quoted). */
  agent_args?: readonly string[];
  /** The launch's enrolment (base64 JSON of the CA certificate and a one-time enrolment certificate and key). */
  enrol_bundle?: string;
}

/** Single-quotes a value for a shell (and systemd's EnvironmentFile) unless it is plainly safe. */
export function shellQuote(v: string): string {
  if (/[\r\n\0]/.test(v)) throw new Error(`user data value ${JSON.stringify(v)} has a line break or NUL`);
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(v) ? v : `'${v.replace(/'/g, `'"'"'`)}'`;
}

/** Fills `{{name}}` placeholders; an unknown placeholder is an error, never left in. */
export function renderUserData(template: string, v: UserDataValues): string {
  const i = v.install;
  const values: Record<string, string> = {
    provider: shellQuote(v.provider), cluster: shellQuote(v.cluster),
    nats_url: shellQuote(v.endpoints.nats_url), consul_http: shellQuote(v.endpoints.consul_http),
    questdb_http: shellQuote(v.endpoints.questdb_http), questdb_pg: shellQuote(v.endpoints.questdb_pg),
    metadata_url: shellQuote(v.metadata_url), agent_port: shellQuote(String(v.agent_port)),
    install_source: shellQuote(i.source),
    install_url: shellQuote(i.source === 'image' ? '' : i.url),
    install_ref: shellQuote(i.source === 'git' ? i.ref : ''),
    install_sha256: shellQuote(i.source === 'tarball' ? i.sha256 : ''),
    agent_args: (v.agent_args ?? []).map(shellQuote).join(' '),
    enrol_bundle: shellQuote(v.enrol_bundle ?? ''),
  };
  return template.replace(/\{\{\s*([a-z0-9_]+)\s*\}\}/g, (_, k: string) => {
    if (!(k in values)) throw new Error(`user data template has an unknown placeholder {{${k}}}`);
    return values[k];
  });
}

/** The template from disk. */
export function burstTemplate(): string {
  return readFileSync(BURST_TEMPLATE_URL, 'utf8');
}

interface CloudConfig {
  packages?: string[];
  write_files?: Array<{ path: string; content: string; permissions?: string }>;
  runcmd?: Array<string | string[]>;
}

/**
 * A cloud-config document as a bash script that does the same: installs `packages` with apt,
 * writes `write_files` (each in a quoted heredoc, so nothing in it is expanded) and runs
 * `runcmd` in order, stopping at the first failure. Only those three modules may appear: anything
 * else is refused rather than silently dropped. GCE runs startup scripts at every boot, so the
 * script is safe to run again (files are rewritten, the install repeats, enable is idempotent).
 */
export function toStartupScript(cloudConfig: string): string {
  const doc = YAML.parse(cloudConfig) as CloudConfig & Record<string, unknown>;
  const unknown = Object.keys(doc ?? {}).filter((k) => !['packages', 'write_files', 'runcmd'].includes(k));
  if (unknown.length) throw new Error(`cannot turn cloud-config module(s) ${unknown.join(', ')} into a startup script`);
  const q = (s: string) => `'${s.replace(/'/g, `'"'"'`)}'`;
  const out = ['#!/bin/bash', '# Prescient burst node: the cloud-config of deploy/cloud-init/burst-node.yaml as a GCE startup script.', 'set -euo pipefail'];
  if (doc.packages?.length) {
    out.push(`if command -v apt-get >/dev/null; then export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq ${doc.packages.map(q).join(' ')}; fi`);
  }
  for (const [k, f] of (doc.write_files ?? []).entries()) {
    const eof = `PRESCIENT_EOF_${k}`;
    if (f.content.split('\n').includes(eof)) throw new Error(`${f.path} contains the heredoc delimiter ${eof}`);
    out.push(`mkdir -p ${q(f.path.replace(/\/[^/]*$/, '') || '/')}`);
    out.push(`cat > ${q(f.path)} <<'${eof}'`, f.content.replace(/\n$/, ''), eof);
    if (f.permissions) out.push(`chmod ${q(f.permissions)} ${q(f.path)}`);
  }
  for (const c of doc.runcmd ?? []) out.push(typeof c === 'string' ? c : c.map(q).join(' '));
  return `${out.join('\n')}\n`;
}
