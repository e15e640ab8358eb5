/**
 * The cloud-init user data a burst instance boots with (deploy/cloud-init/burst-node.yaml):
 * a pure rendering of the template, so what each instance receives is tested byte for byte.
 */
import { readFileSync } from 'node:fs';
import type { StackEndpoints } from '../../shared/index.js';

/** Where the template is (copied next to the build by deploy/scripts/copy-assets.mjs). */
export const BURST_TEMPLATE_URL = new URL('../../deploy/cloud-init/burst-node.yaml', import.meta.url);

export interface UserDataValues {
  provider: string;
  cluster: string;
  endpoints: StackEndpoints;
  /** Node id where the metadata service is not used (tests, unknown providers). */
  node_id?: string;
  /** Extra `prescient agent` arguments, already split (each is quoted). */
  agent_args?: readonly string[];
  /** Where the instance fetches Prescient from. */
  repo_url?: string;
}

/** Single-quotes a value for a shell (cloud-init's runcmd and the scripts it writes). */
export function shellQuote(v: string): string {
  if (/[\r\n\0]/.test(v)) throw new Error(`user data value ${JSON.stringify(v)} has a line break or NUL`);
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(v) ? v : `'${v.replace(/'/g, `'"'"'`)}'`;
}

/** Fills `{{name}}` placeholders; an unknown placeholder is an error, never left in. */
export function renderUserData(template: string, v: UserDataValues): string {
  const values: Record<string, string> = {
    provider: shellQuote(v.provider), cluster: shellQuote(v.cluster),
    nats_url: shellQuote(v.endpoints.nats_url), consul_http: shellQuote(v.endpoints.consul_http),
    questdb_http: shellQuote(v.endpoints.questdb_http), questdb_pg: shellQuote(v.endpoints.questdb_pg),
    node_id: v.node_id === undefined ? '"$(hostname)"' : shellQuote(v.node_id), agent_args: (v.agent_args ?? []).map(shellQuote).join(' '),
    repo_url: shellQuote(v.repo_url ?? 'https://github.com/prescient/prescient.git'),
  };
  return template.replace(/\{\{\s*([a-z_]+)\s*\}\}/g, (_, k: string) => {
    if (!(k in values)) throw new Error(`user data template has an unknown placeholder {{${k}}}`);
    return values[k];
  });
}

/** The template from disk. */
export function burstTemplate(): string {
  return readFileSync(BURST_TEMPLATE_URL, 'utf8');
}
