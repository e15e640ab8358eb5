#!/usr/bin/env -S LD_PRELOAD=libjemalloc.so.2 MALLOC_CONF=background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0 MALLOC_ARENA_MAX=2 MALLOC_TRIM_THRESHOLD_=131072 node --max-semi-space-size=64 --expose-gc
/**
 * The `prescient` command line. Every command has --help; those a script would read take --json.
 *
 * The shebang lets V8 grow its young generation to 64 MB a semi-space (16 MB by default on 64-bit Node): a
 * leader placing thousands of jobs a second allocates a record, an event and an assignment per
 * job, and with the default the scavenger ran so often that placements per leader core-second
 * were 3,800–4,000 against 5,200–5,600 with it (submit-latency bench, same machine, alternated).
 * V8 grows the space only under that pressure; a short command never does. Node reads the flag
 * only at start, so it is in the shebang, and the bench helpers start the CLI with the same.
 *
 * It also lets a leader give memory back after a burst (coordinator/leader/reclaim.ts): jemalloc
 * is preloaded and hands freed pages back within a second (allocator.ts; the processes the CLI
 * starts do not inherit it), glibc's malloc, where jemalloc is missing, returns freed memory above
 * 128 KB in two arenas at most, and `--expose-gc` lets the leader run one full collection once a
 * burst of large submissions is over (poison bench: RSS after ÷ before 1.34–1.41 with glibc alone,
 * 0.991–1.092 with jemalloc and that collection compacting).
 *
 * Each action imports what its command uses when it runs, so a command loads only that (issue
 * 15: `--help` and `submit` start in under 300 ms of CPU, `status` in under 400 ms). Imported
 * here at the top: commander, node's own modules, shared/ and the CLI's formatting, which are
 * cheap; never the coordinator, the agent, the models (brain.js), gRPC, Consul or a cloud SDK.
 * test/unit/cli-imports.test.ts checks what `--help`, `submit`, `status` and `scale status` load.
 */
import { Command, Help, Option } from 'commander';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  ConfigError, JOB_ID_PATTERN, parseListen, parseLogLevel, SchemaValidationError, TERMINAL_STATES, allowedInputRoots, allowedOutputRoots, describeValue, isActor, isFinalEvent, loadEndpoints, newJobId, pkiDirFor, stateDir, type Member,
  NO_OWNER, jobProgressSubject, retryUnavailable, type OutputCodec, type TaskEvent, type TaskProgress, type TaskState, type ValidationContext,
} from '../../shared/index.js';
import type { StackStatus } from '../../deploy/stack/index.js';
import { POLICY_NAMES } from '../placement/types.js';
import { EXIT, NoSuchJobError, WrongKindError, errorJson, errorText, exitCodeOf, jsonRequested, versionRequest } from './errors.js';
import { formatEvent, formatInput, formatOutputs, formatProgress } from './format.js';
import { cliBus } from './member.js';
import { checkJob } from '../client/validate.js';
import { attachProbes } from './probes.js';
import type { Log } from '../../shared/log.js';
import { withoutCliAllocator } from './allocator.js';

// The allocator the shebang preloaded is the CLI's own: ffmpeg, ffprobe and the stack's services start without it.
withoutCliAllocator(process.env);

const localStack = () => import('../../deploy/stack/index.js');
const bus = () => import('../bus/index.js');

/** Whose jobs this member may follow: a client its own, an operator anyone's. */
const followAs = (me: Member) => (me.role === 'client' ? me.name : '*');

/** Whether this run asked for JSON: its command's --json once it runs; before that (commander refusing the arguments), --json among them. */
const jsonArgs = jsonRequested(process.argv.slice(2));
let jsonOut = jsonArgs;

/** The "Examples:" section of a command's help: one command line each, `# why` after it where useful. */
const examples = (...lines: string[]) => `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}`;

export const program = new Command();
program
  .name('prescient')
  .description('Predictive resource reservation for distributed video encoding')
  .option('--state-dir <dir>', 'where the local stack keeps its data and endpoints (default: $PRESCIENT_STATE_DIR or ~/.prescient)')
  .option('--log-level <level>', 'what the coordinator and agent log: trace, debug, info, warn, error, fatal or silent (default: $PRESCIENT_LOG_LEVEL or info); JSON lines unless on a terminal ($PRESCIENT_LOG_FORMAT=json|text)')
  .showHelpAfterError()
  // Every refusal comes to main() below, which prints it as JSON where --json was given; the
  // settings are inherited by each command defined after them.
  .exitOverride()
  .configureOutput({
    outputError: (str, write) => { if (!jsonArgs) write(str); },
    writeErr: (str) => { if (!jsonArgs) process.stderr.write(str); },
  })
  .hook('preAction', (_program, command) => {
    jsonOut = command.opts().json === true;
    // The services read it where they make their logger (shared/log.ts).
    const level = program.opts().logLevel as string | undefined;
    if (level !== undefined) process.env.PRESCIENT_LOG_LEVEL = parseLogLevel(level);
  })
  .addHelpText('after', `
Exit status: 0 done; 1 failed; 2 invalid input (a job's schema, a request that does not fit the job);
3 nothing to do (the job had already ended); 4 no such job; 5 gave up waiting (the job is still in
the system). With --json, a failed command prints {"error": {"message": …, "field"?: …}} on stdout.
${examples(
    'prescient stack up && prescient dev                    # a one-host cluster to try it on',
    'prescient submit job.yaml --wait                       # submit and follow to the end',
    'prescient jobs --state queued,running                  # what the cluster is doing',
    'prescient --version --json',
  )}`);

const dir = () => stateDir(program.opts().stateDir);
const modelDir = () => path.join(dir(), 'models');
const validation = (): ValidationContext => ({ allowedInputRoots: allowedInputRoots(dir()), allowedOutputRoots: allowedOutputRoots(dir()) });
type ResourcePredictorLike = import('../../models/index.js').ResourcePredictor;
const print = (json: boolean, value: unknown, text: () => string) => console.log(json ? JSON.stringify(value, null, 2) : text());

// ── stack ──────────────────────────────────────────────────────────────────────────────
const stack = program.command('stack').description('start, stop or inspect the local NATS + Consul + QuestDB stack')
  .addHelpText('after', examples('prescient stack up', 'prescient stack status --json', 'prescient stack down'));
stack.command('up').description('start the local stack (on loopback unless --host) and wait until every service is healthy')
  .option('--host <address>', 'IPv4 address of this host that every service binds to and advertises, so agents and coordinators on other hosts reach it (default 127.0.0.1)')
  .option('--durable', 'Consul as a server keeping its KV, sessions and ACLs on disk across restarts (a production stack), not a dev agent that starts empty')
  .option('--json', 'print the status as JSON')
  .addHelpText('after', `
Examples:
  prescient stack up                                   # this host only, on loopback (tests, the demo)
  prescient stack up --host 10.0.0.5 --durable         # a production stack other hosts join (deploy/README.md)`)
  .action(async (o) => {
    const s = await (await localStack()).stackUp({ stateDir: dir(), host: o.host, durable: o.durable === true ? true : undefined, log: (l) => { if (!o.json) console.error(l); } });
    print(o.json, s, () => formatStack(s));
  });
stack.command('down').description('stop every service of the local stack')
  .option('--json', 'print the status as JSON')
  .addHelpText('after', examples('prescient stack down', 'prescient --state-dir /tmp/p stack down       # another stack on this host'))
  .action(async (o) => { const s = await (await localStack()).stackDown({ stateDir: dir() }); print(o.json, s, () => formatStack(s)); });
stack.command('status').description('show each service, its health and endpoints (exit status 3 when it is down)')
  .option('--json', 'print the status as JSON')
  .addHelpText('after', examples('prescient stack status', 'prescient stack status --json | jq \'.services[] | select(.healthy | not)\''))
  .action(async (o) => {
    const s = await (await localStack()).stackStatus({ stateDir: dir() });
    print(o.json, s, () => formatStack(s));
    if (!s.up) process.exitCode = 3;
  });

function formatStack(s: StackStatus): string {
  const lines = [`stack at ${s.state_dir}: ${s.up ? 'up' : 'down'}`];
  for (const svc of s.services) lines.push(`  ${svc.name.padEnd(8)} ${svc.healthy ? 'healthy' : svc.running ? 'unhealthy' : 'stopped'}  ${svc.endpoint}${svc.pid ? `  pid ${svc.pid}` : ''}`);
  return lines.join('\n');
}

// ── certs ──────────────────────────────────────────────────────────────────────────────
const certs = program.command('certs').description('the cluster CA and each member\'s certificate (gRPC mutual TLS, NATS users)')
  .addHelpText('after', `
Layout: STATE/pki/ca.crt, ca.key (0600; keep it on the issuing host), and STATE/pki/<role>/<name>/tls.crt, tls.key.
\`prescient stack up\` creates the CA; coordinators and agents on the host holding ca.key are issued their certificate on first start.

Examples:
  prescient certs init
  prescient certs issue --node gpu-07            # then copy STATE/pki/ca.crt and STATE/pki/node/gpu-07/ to that host
  prescient certs issue --client ci-pipeline
  prescient certs revoke --node gpu-07
  prescient certs list --json`);
const pki = () => import('../../shared/pki/index.js');
const pkiPath = () => pkiDirFor(dir());
certs.command('init').description('create the cluster CA (nothing is changed when one exists)')
  .option('--json', 'print the result as JSON')
  .addHelpText('after', examples('prescient certs init', 'prescient --state-dir /var/lib/prescient certs init --json'))
  .action(async (o) => {
    const made = (await pki()).initCa(pkiPath());
    print(o.json, { ca: path.join(pkiPath(), 'ca.crt'), created: made }, () => `${made ? 'created' : 'kept the existing'} cluster CA ${path.join(pkiPath(), 'ca.crt')}`);
  });
certs.command('issue').description('issue (or renew) one member\'s certificate, signed by the cluster CA')
  .option('--node <id>', 'a node agent (its certificate must name its node id)')
  .option('--coordinator <id>', 'a coordinator')
  .option('--client <name>', 'a submitting client (a CI job, a user)')
  .option('--host <name-or-ip...>', 'names and addresses a service is reached at (added to the certificate)')
  .option('--json', 'print the files as JSON')
  .addHelpText('after', examples(
    'prescient certs issue --node gpu-07 --host gpu-07.example --host 10.0.0.7',
    'prescient certs issue --client ci-pipeline        # may submit, cancel and follow its own jobs only',
  ))
  .action(async (o) => {
    const chosen = (['node', 'coordinator', 'client'] as const).filter((r) => o[r] !== undefined);
    if (chosen.length !== 1) throw new ConfigError('certs issue', 'give exactly one of --node, --coordinator, --client');
    const role = chosen[0];
    const files = (await pki()).issue(pkiPath(), { role, name: String(o[role]) }, o.host ?? []);
    print(o.json, { role, name: o[role], ...files }, () => `issued ${role} ${o[role]}: ${files.cert_file} (key ${files.key_file})`);
  });
certs.command('revoke').description('revoke a member: NATS drops its user at once, and every member refuses its certificate (the list reaches other hosts through Consul)')
  .option('--node <id>').option('--coordinator <id>').option('--client <name>').option('--admin <name>')
  .option('--json', 'print the result as JSON')
  .addHelpText('after', examples('prescient certs revoke --node gpu-07', 'prescient certs revoke --client ci-pipeline --json'))
  .action(async (o) => {
    const chosen = (['node', 'coordinator', 'client', 'admin'] as const).filter((r) => o[r] !== undefined);
    if (chosen.length !== 1) throw new ConfigError('certs revoke', 'give exactly one of --node, --coordinator, --client, --admin');
    const role = chosen[0], name = String(o[role]);
    const fingerprint256 = (await pki()).revoke(pkiPath(), { role, name });
    if (!fingerprint256) throw new ConfigError(`certs revoke --${role}`, `no certificate for ${role} ${name} on this host`);
    // Every host learns of it through Consul; where Consul cannot be written now, the next coordinator started here adds it.
    const token = (await pki()).readSecret(pkiPath(), 'consul-management') ?? (await pki()).readSecret(pkiPath(), 'consul-coordinator');
    let cluster: string;
    try {
      if (!token) throw new Error('no Consul token on this host');
      cluster = `in Consul's revoked list for every host (${await (await pki()).publishRevoked(loadEndpoints(dir()).consul_http, token, pkiPath())} entries)`;
    } catch (e) {
      cluster = `on this host only for now (${(e as Error).message}); a coordinator started here adds it to Consul's list`;
    }
    print(o.json, { role, name, fingerprint256, cluster }, () => `revoked ${role} ${name} (${fingerprint256}): ${cluster}`);
  });
certs.command('join-token').description('a token that lets new hosts enrol as nodes (`prescient join --token …`, or deploy/install.sh --agent --join URL --token …)')
  .option('--nodes <n>', 'how many nodes it may enrol', '1')
  .option('--ttl <span>', 'how long it is good for: 30m, 24h, 7d', '24h')
  .option('--json', 'print the token and its limits as JSON')
  .addHelpText('after', `
Run it on the host that holds the CA key, with the stack up (its places are recorded in Consul).
The token carries the CA certificate, a one-time enrolment certificate and the cluster's
endpoints and QuestDB password: keep it secret until it expires or its places are used.

Examples:
  prescient stack up --host 10.0.0.5
  prescient certs join-token --nodes 3 --ttl 2h`)
  .action(async (o) => {
    const p = await pki();
    const nodes = Number(o.nodes);
    if (!Number.isInteger(nodes) || nodes < 1 || nodes > p.MAX_JOIN_NODES) throw new ConfigError('--nodes', `must be a whole number from 1 to ${p.MAX_JOIN_NODES}, got ${JSON.stringify(o.nodes)}`);
    const ttlMs = (await import('../retrain/index.js')).parseWindow(String(o.ttl), '--ttl');
    const management = p.readSecret(pkiPath(), 'consul-management');
    if (!p.canIssue(pkiPath()) || !management) throw new ConfigError('certs join-token', `run it on the host that holds the CA key and Consul's management token (${pkiPath()})`);
    const endpoints = loadEndpoints(dir());
    const name = `join-${randomBytes(8).toString('hex')}`, expires_at = Date.now() + ttlMs;
    const m = { role: 'enrol' as const, name };
    const files = p.issue(pkiPath(), m, [], Math.ceil(ttlMs / 86_400_000));
    let token: string;
    try {
      await p.recordJoin(endpoints.consul_http, management, name, { nodes, enrolled: [], expires_at });
      const bare = (u: string) => { const x = new URL(u); x.username = ''; x.password = ''; return x.toString().replace(/\/$/, ''); };
      token = p.encodeJoinToken({
        v: 1, ca: readFileSync(path.join(pkiPath(), 'ca.crt'), 'utf8'), cert: readFileSync(files.cert_file, 'utf8'), key: readFileSync(files.key_file, 'utf8'),
        endpoints: { nats_url: endpoints.nats_url, consul_http: endpoints.consul_http, questdb_http: bare(endpoints.questdb_http), questdb_pg: endpoints.questdb_pg },
        questdb_password: p.readSecret(pkiPath(), 'questdb'), expires_at,
      });
    } finally {
      p.forget(pkiPath(), m); // it lives in the token only; the Consul record is what the leader checks
    }
    const loopback = /^(nats:\/\/)?(127\.|localhost)/.test(endpoints.nats_url);
    print(o.json, { token, name, nodes, expires_at: new Date(expires_at).toISOString(), nats_url: endpoints.nats_url }, () => [
      token, '',
      `enrols ${nodes} node${nodes > 1 ? 's' : ''} until ${new Date(expires_at).toISOString()}; on each new host:`,
      `  deploy/install.sh --agent --join ${endpoints.nats_url} --token <the token above>`,
      ...(loopback ? [`note: this stack serves on loopback only; other hosts cannot reach it (start it with \`prescient stack up --host <address>\`)`] : []),
    ].join('\n'));
  });
certs.command('list').description('the member certificates on this host, with their expiry')
  .option('--json', 'print them as JSON')
  .addHelpText('after', examples('prescient certs list', 'prescient certs list --json | jq \'.[] | select(.expired)\''))
  .action(async (o) => {
    const all = (await pki()).listIssued(pkiPath());
    print(o.json, all, () => (all.length ? all.map((c) => `${c.role.padEnd(12)} ${c.name.padEnd(24)} until ${c.not_after}${c.expired ? '  EXPIRED' : ''}`).join('\n') : 'no member certificates here'));
  });

// ── jobs ───────────────────────────────────────────────────────────────────────────────
/** Reads one or more job documents (YAML, multi-document allowed, or JSON). */
async function readJobs(file: string): Promise<unknown[]> {
  const { default: YAML } = await import('yaml');
  const text = readFileSync(file, 'utf8');
  return YAML.parseAllDocuments(text).map((d) => {
    if (d.errors.length) throw new ConfigError(file, `is not valid YAML/JSON: ${d.errors[0].message}`);
    return d.toJS();
  });
}

program.command('validate').description('check job files without submitting them')
  .argument('<files...>', 'YAML or JSON job files')
  .option('--json', 'print results as JSON')
  .addHelpText('after', examples('prescient validate job.yaml', 'prescient validate jobs/*.yaml --json     # exit status 2 when any is invalid'))
  .action(async (files: string[], o) => {
    const results: { file: string; index: number; valid: boolean; issues: SchemaValidationError['issues'] }[] = [];
    for (const f of files) results.push(...(await readJobs(f)).map((raw, i) => {
      try { checkJob(raw, validation()); return { file: f, index: i, valid: true, issues: [] }; }
      catch (e) { if (!(e instanceof SchemaValidationError)) throw e; return { file: f, index: i, valid: false, issues: e.issues }; }
    }));
    print(o.json, results, () => results.map((r) => `${r.file}#${r.index}: ${r.valid ? 'valid' : 'INVALID\n' + r.issues.map((i) => `  ${i.field}: ${i.reason}`).join('\n')}`).join('\n'));
    if (results.some((r) => !r.valid)) process.exitCode = 2;
  });

program.command('schema').description('print the JSON Schema of a job file, the burst configuration or a training-log mapping (for editors and other tools; shipped as shared/schema/json/DOCUMENT.schema.json)')
  .argument('[document]', 'which document: job, burst or mapping', 'job')
  .addHelpText('after', examples(
    'prescient schema > job.schema.json',
    'prescient schema burst > burst.schema.json',
    'prescient schema mapping > mapping.schema.json',
    '# then, first line of a YAML file, for editors with the YAML language server:',
    '# yaml-language-server: $schema=./job.schema.json',
  ))
  .action(async (which: string) => {
    const schemas = await import('./schemas.js');
    console.log(JSON.stringify(schemas.jsonSchema(which), null, 2));
  });

program.command('submit').description('submit encoding jobs through NATS JetStream (kept until a leader takes them)')
  .argument('<file>', 'YAML or JSON job file (several YAML documents submit several jobs)')
  .option('--wait', 'follow each job until it finishes and show the result')
  .option('--timeout <seconds>', 'with --wait: stop waiting after this long (the jobs carry on; exit status 5)', '600')
  .option('--json', 'print job ids and results as JSON')
  .option('--no-probe', 'do not probe inputs here (a file input is then probed by a node before it is predicted)')
  .option('--no-pilot', 'do not test-encode the first frames of each job here (its prediction is then wider)')
  .addHelpText('after', examples(
    'prescient submit job.yaml                          # prints each job id and returns',
    'prescient submit batch.yaml --wait --timeout 3600  # follows every job to its end',
    'prescient submit job.yaml --json | jq -r \'.jobs[]\'',
  ))
  .action(async (file: string, o) => {
    const timeoutS = seconds(o.timeout, '--timeout');
    const ctx = validation();
    const schemas = (await readJobs(file)).map((raw) => checkJob(raw, ctx));
    if (o.probe) await attachProbes(schemas, { cacheFile: path.join(dir(), 'probe-cache.json'), log: (m) => { if (!o.json) console.error(m); }, pilot: o.pilot });
    const [{ ensureStreams, followJob, publishSubmission }, { JSONCodec }] = await Promise.all([bus(), import('nats')]);
    const progressCodec = JSONCodec<TaskProgress>();
    const { nc, me } = await cliBus(dir());
    try {
      // A client may not create streams: a coordinator has made them.
      if (me.role !== 'client') await retryUnavailable(() => ensureStreams(nc));
      const js = nc.jetstream();
      const ids: string[] = [];
      for (const schema of schemas) {
        const id = newJobId();
        await publishSubmission(js, me.name, { job_id: id, submitted_at: Date.now(), schema });
        ids.push(id);
        if (!o.json) console.log(`submitted ${id}`);
      }
      if (!o.wait) { if (o.json) console.log(JSON.stringify({ jobs: ids })); return; }
      const progress = o.json ? [] : ids.map((id) => nc.subscribe(jobProgressSubject(me.name, id), { callback: (_e, m) => console.log(formatProgress(progressCodec.decode(m.data))) }));
      const lasts = await Promise.all(ids.map((id) => followJob(js, { owner: me.name, id }, (e) => { if (!o.json) console.log(formatEvent(e)); }, timeoutS * 1000)));
      progress.forEach((p) => p.unsubscribe());
      const outcome = waitOutcome(ids, lasts, timeoutS);
      if (o.json) console.log(JSON.stringify({ jobs: outcome.jobs, ...(outcome.error && { error: outcome.error }) }, null, 2));
      else for (const line of outcome.notes) console.error(line);
      process.exitCode = outcome.exitCode;
    } finally {
      await nc.drain();
    }
  });

/** `--timeout` and the like: seconds, more than 0 and at most a week. */
function seconds(v: string, flag: string): number {
  const n = Number(v);
  if (!(Number.isFinite(n) && n > 0 && n <= 7 * 86_400)) throw new ConfigError(flag, `must be a number of seconds above 0 and at most 604800, got ${JSON.stringify(v)}`);
  return n;
}

/** A job id as given on the command line: one a job could have, else a ConfigError naming the argument. */
function jobId(id: string): string {
  if (!JOB_ID_PATTERN.test(id)) throw new ConfigError('<job-id>', `${describeValue(id)} is not a job id (1 to 64 letters, digits, _ or -)`);
  return id;
}

/**
 * What `submit --wait` ends with: each job's last event, or for one still going when the wait
 * ended what was last seen of it and how to follow it; exit status 1 when a job did not
 * succeed, else 5 when one was still going.
 */
export function waitOutcome(ids: readonly string[], lasts: readonly (TaskEvent | undefined)[], timeoutS: number) {
  const notes: string[] = [];
  const jobs = ids.map((id, i) => {
    const last = lasts[i];
    if (last && isFinalEvent(last)) return last;
    const seen = last ? `still ${last.state}${last.state === 'succeeded' ? ' (its quality figures are being measured)' : ''}` : 'not yet taken by a leader (it waits in JetStream until one records it; is a coordinator running?)';
    const message = `${id}: gave up waiting after ${timeoutS} s; ${seen}. The job is still in the system: follow it with \`prescient status ${id}\`, or cancel it with \`prescient cancel ${id}\``;
    notes.push(message);
    return { job_id: id, state: last?.state ?? 'submitted', timed_out: true, reason: message, last_event: last ?? null };
  });
  const failed = jobs.filter((j) => !('timed_out' in j) && j.state !== 'succeeded');
  const waiting = jobs.filter((j) => 'timed_out' in j);
  const parts = [
    ...(failed.length ? [`${failed.length} of ${ids.length} job(s) did not succeed: ${failed.map((j) => `${j.job_id} ${j.state}`).join(', ')}`] : []),
    ...(waiting.length ? [`${waiting.length} of ${ids.length} job(s) still going after ${timeoutS} s: ${waiting.map((j) => j.job_id).join(', ')} (follow with prescient status <job-id>)`] : []),
  ];
  const exitCode = failed.length ? EXIT.failed : waiting.length ? EXIT.timed_out : 0;
  return { jobs, notes, exitCode, error: parts.length ? { message: parts.join('; '), code: failed.length ? 'job_failed' : 'timed_out' } : undefined };
}

program.command('status').description('show the recorded state of one job, or that it waits in JetStream for a leader')
  .argument('<job-id>')
  .option('--json', 'print the task record as JSON (state "submitted" for a job no leader has recorded yet)')
  .addHelpText('after', examples('prescient status j-20240601-abc123', 'prescient status j-20240601-abc123 --json | jq -r .state'))
  .action(async (id: string, o) => {
    jobId(id);
    const [{ JetStreamTaskStore, pendingSubmissions }, { waitingJob, formatWaiting }] = await Promise.all([bus(), import('./jobs.js')]);
    const { nc } = await cliBus(dir());
    try {
      const t = await (await JetStreamTaskStore.open(nc.jetstream())).get(id);
      if (t) {
        print(o.json, t, () => [
          formatEvent({ job_id: t.id, state: t.state, at: t.updated_at, term: t.term, reason: t.reason, predicted: t.predicted, allocation: t.allocation, result: t.result, node_id: t.allocation?.node_id } as TaskEvent),
          ...(t.state === 'rejected' ? [] : [`  ${formatInput(t.schema)}`, ...formatOutputs(t)]),
        ].join('\n'));
        return;
      }
      // Not recorded: a leader may not have taken it yet (none is up), and then it is in the jobs stream.
      const p = (await pendingSubmissions(nc, { jobId: id })).submissions[0];
      if (!p) throw new NoSuchJobError(id);
      const w = waitingJob(p);
      print(o.json, w, () => formatWaiting(w, validation()));
    } finally {
      await nc.drain();
    }
  });

program.command('logs').description('show a job\'s ffmpeg log, as its agent sent it (kept a day); -f follows it until the job ends')
  .argument('<job-id>')
  .option('-f, --follow', 'keep printing lines as they come, until the job has ended')
  .option('--json', 'one JSON object per batch of lines (job_id, node_id, attempt, pass, at, lines)')
  .addHelpText('after', examples('prescient logs j-20240601-abc123', 'prescient logs -f j-20240601-abc123', 'prescient logs j-20240601-abc123 --json | jq -r \'.lines[]\''))
  .action(async (id: string, o: { follow?: boolean; json?: boolean }) => {
    jobId(id);
    const { JetStreamTaskStore, readJobLogs, followJob, ensureStreams } = await bus();
    const { nc, me } = await cliBus(dir());
    try {
      const js = nc.jetstream();
      // An operator reads any job's log (under its owner's name); a client its own only.
      let owner = me.name;
      let ended = false;
      if (me.role !== 'client') {
        await retryUnavailable(() => ensureStreams(nc));
        const t = await (await JetStreamTaskStore.open(js)).get(id);
        if (!t) throw new NoSuchJobError(id, 'no task record (a job waiting for a leader has no log yet)');
        owner = t.owner ?? NO_OWNER;
        ended = TERMINAL_STATES.has(t.state);
      }
      let header = '';
      const n = await readJobLogs(js, { owner, id }, (b) => {
        if (o.json) { console.log(JSON.stringify(b)); return; }
        // A line saying where the lines come from, each time that changes (a retry on another node, a second pass).
        const h = `── ${b.node_id}, attempt ${b.attempt}, pass ${b.pass}`;
        if (h !== header) { console.log(h); header = h; }
        for (const l of b.lines) console.log(l);
      }, o.follow && !ended ? { follow: followJob(js, { owner: followAs(me), id }, () => undefined, 24 * 3600_000) } : {});
      if (!n && !o.json) console.error(`${id}: no log lines${ended ? '' : ' yet'} (an agent sends them while it encodes; they are kept a day)`);
    } finally {
      await nc.drain();
    }
  });

program.command('dead-letters').description('show submissions set aside instead of taken (not JSON, no valid job id, too large or deep, a record that could not be written), newest last, with why')
  .option('--limit <n>', 'show at most this many', '50')
  .option('--json', 'print them as JSON')
  .addHelpText('after', examples('prescient dead-letters', 'prescient dead-letters --limit 5 --json'))
  .action(async (o: { limit: string; json: boolean }) => {
    const limit = Number(o.limit);
    if (!Number.isSafeInteger(limit) || limit < 1) throw new ConfigError('--limit', `must be a whole number ≥ 1, got ${JSON.stringify(o.limit)}`);
    const { listDeadLetters } = await bus();
    const { nc } = await cliBus(dir());
    try {
      const dead = await listDeadLetters(nc, limit);
      print(o.json, dead, () => (dead.length
        ? dead.map((d) => `#${d.stream_seq}  ${d.at}  ${d.job_id ?? '(no valid job id)'}  ${d.bytes} bytes, ${d.deliveries} deliver${d.deliveries === 1 ? 'y' : 'ies'}\n  ${d.reason}`).join('\n')
        : 'no dead letters'));
    } finally {
      await nc.drain();
    }
  });

/**
 * `cancel` and `stop` publish the same request on the cancel subject; the leader ends the job by
 * its kind: a batch task is cancelled (its output discarded), a live channel (an actor) is
 * stopped gracefully (its playlist closed and kept) and ends `succeeded`. So the CLI first looks
 * the job up (an operator can; a client cannot read the task records): a job that is nowhere is
 * refused at once, `stop` on a batch job is refused (it would cancel it), and a job that has
 * ended is left alone. A job still waiting in JetStream for a leader can be cancelled: the
 * request waits behind it and the leader that takes it reads both.
 */
const endJob = (verb: 'cancel' | 'stop', expect: TaskState) => async (id: string, o: { wait: boolean; timeout: string; json: boolean }) => {
  jobId(id);
  const timeoutS = seconds(o.timeout, '--timeout');
  const { ensureStreams, followJob, publishCancel, pendingSubmissions, JetStreamTaskStore } = await bus();
  const { nc, me } = await cliBus(dir());
  try {
    const js = nc.jetstream();
    let owner = me.name, waiting = false;
    if (me.role !== 'client') {
      await retryUnavailable(() => ensureStreams(nc));
      const t = await (await JetStreamTaskStore.open(js)).get(id);
      const p = t ? undefined : (await pendingSubmissions(nc, { jobId: id })).submissions[0];
      if (!t && !p) throw new NoSuchJobError(id);
      const kind = t ? t.schema.kind : (p!.schema as { kind?: unknown } | undefined)?.kind;
      if (verb === 'stop' && kind !== 'actor') {
        throw new WrongKindError('<job-id>', `${id} is a batch job, not a live channel: \`prescient stop\` ends live channels (kind: actor) only. To cancel it (its output discarded), run \`prescient cancel ${id}\``);
      }
      if (t && TERMINAL_STATES.has(t.state)) {
        print(o.json, { job_id: id, state: t.state, reason: `already ${t.state}`, error: { message: `${id} has already ended: ${t.state}`, code: 'already_ended' } }, () => `${id} is already ${t.state}; nothing to ${verb}`);
        process.exitCode = EXIT.nothing_to_do;
        return;
      }
      owner = t?.owner ?? p?.owner ?? NO_OWNER;
      waiting = !t;
    }
    await publishCancel(js, owner, { job_id: id, requested_at: Date.now(), action: verb });
    const what = verb === 'stop' ? 'stop' : 'cancellation';
    const queuedNote = waiting ? ' (the job waits in JetStream for a leader; the request waits behind it, and the leader that takes them ends it)' : '';
    if (!o.wait) { print(o.json, { job_id: id, requested: true, ...(waiting && { state: 'submitted' }) }, () => `${what} of ${id} requested${queuedNote}`); return; }
    if (waiting && !o.json) console.error(`${what} of ${id} requested${queuedNote}`);
    const last = await followJob(js, { owner: followAs(me), id }, () => undefined, timeoutS * 1000);
    if (last && isFinalEvent(last)) {
      print(o.json, last, () => formatEvent(last));
      if (last.state !== expect) process.exitCode = EXIT.failed;
      return;
    }
    const seen = last ? `it is still ${last.state}` : me.role === 'client' ? 'no event of it was seen (it waits for a leader, or is no job of yours)' : 'no leader has taken it yet';
    const message = `${id}: the ${what} was requested but the job had not ended after ${timeoutS} s; ${seen}. The request stays in JetStream until a leader acts on it: follow with \`prescient status ${id}\``;
    print(o.json, { job_id: id, state: last?.state ?? (waiting ? 'submitted' : 'unknown'), requested: true, timed_out: true, reason: message, error: { message, code: 'timed_out' } }, () => message);
    process.exitCode = EXIT.timed_out;
  } finally {
    await nc.drain();
  }
};

for (const [verb, expect, description, example] of [
  ['cancel', 'cancelled', 'cancel a job: a queued one at once, a running one once its agent has stopped the encode (a live channel too: `stop` keeps its playlist)',
    examples('prescient cancel j-20240601-abc123', 'prescient cancel j-20240601-abc123 --no-wait --json   # return once the request is published')],
  ['stop', 'succeeded', 'stop a live channel (a job of kind: actor): ffmpeg closes its playlist, the reservation is released; refused for a batch job (use cancel)',
    examples('prescient stop j-20240601-live01', 'prescient stop j-20240601-live01 --timeout 120 --json')],
] as const) {
  program.command(verb).description(description)
    .argument('<job-id>')
    .option('--no-wait', 'return once the request is published (it waits in JetStream until a leader takes it)')
    .option('--timeout <seconds>', 'give up waiting after this long (the request stays; exit status 5)', '60')
    .option('--json', 'print the final event as JSON')
    .addHelpText('after', example)
    .action(endJob(verb, expect));
}

// ── job lists ──────────────────────────────────────────────────────────────────────────
program.command('jobs').description('list jobs, newest first: the task records and the submissions waiting in JetStream for a leader (state "submitted")')
  .option('--state <states>', 'only jobs in these states, comma-separated: submitted, queued, placed, running, succeeded, failed, cancelled, rejected')
  .option('--limit <n>', 'show at most this many (the newest)', '50')
  .option('--json', 'print them as JSON')
  .addHelpText('after', examples(
    'prescient jobs                                     # the 50 newest',
    'prescient jobs --state queued,running',
    'prescient jobs --state failed --limit 10 --json | jq -r \'.jobs[].job_id\'',
  ))
  .action(async (o: { state?: string; limit: string; json?: boolean }) => {
    const [{ JetStreamTaskStore, pendingSubmissions }, { jobsView, formatJobs, parseLimit, parseStates }] = await Promise.all([bus(), import('./jobs.js')]);
    const states = parseStates(o.state), limit = parseLimit(o.limit);
    const { nc } = await cliBus(dir());
    try {
      const [tasks, pending] = await Promise.all([(await JetStreamTaskStore.open(nc.jetstream())).listAll(), pendingSubmissions(nc)]);
      const v = jobsView(tasks, pending.submissions, { states, limit });
      print(!!o.json, { ...v, ...(pending.more && { incomplete: 'the jobs stream holds more submissions than were read' }) }, () => formatJobs(v, pending.more));
    } finally {
      await nc.drain();
    }
  });

// ── processes ──────────────────────────────────────────────────────────────────────────
const untilSignal = (stop: () => Promise<void>) => {
  let stopping = false;
  const handler = () => {
    if (stopping) return;
    stopping = true;
    stop().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
};

/** `--nats-url` and the other endpoints: where the cluster's services are when this host runs no stack. */
const endpointOptions = (cmd: Command) => cmd
  .option('--nats-url <url>', 'the cluster\'s NATS (default: $PRESCIENT_NATS_URL, else this host\'s stack)')
  .option('--consul-http <host:port>', 'the cluster\'s Consul HTTP API (default: $PRESCIENT_CONSUL_HTTP, else this host\'s stack)')
  .option('--questdb-http <url>', 'the cluster\'s QuestDB REST API (default: $PRESCIENT_QUESTDB_HTTP, else this host\'s stack)')
  .option('--questdb-pg <host:port>', 'the cluster\'s QuestDB PG wire (default: $PRESCIENT_QUESTDB_PG, else this host\'s stack)');
const endpointsOf = (o: Record<string, unknown>) => loadEndpoints(dir(), {
  nats_url: o.natsUrl as string | undefined, consul_http: o.consulHttp as string | undefined,
  questdb_http: o.questdbHttp as string | undefined, questdb_pg: o.questdbPg as string | undefined,
});

endpointOptions(program.command('coordinator').description('run a coordinator: campaigns for leadership in Consul; the leader places jobs'))
  .option('--id <id>', 'candidate id (default: host-pid)')
  .option('--coverage <share>', 'coverage of the upper bounds reservations are made at (default: the model\'s, 0.95)')
  .option('--retrain <schedule>', 'retrain from QuestDB: weekly, monthly, daily or a cron expression (default: $PRESCIENT_RETRAIN, else never)')
  .option('--retrain-window <span>', 'how far back retraining reads runs', '30d')
  .option('--reservation <policy>', 'what a job reserves: predictive (its predicted upper bound), fixed-slots:N or one-core (for comparison)', 'predictive')
  .option('--placement <policy>', `which node a job goes to: ${POLICY_NAMES.join(', ')}`, 'best-fit')
  .option('--grpc-host <host>', 'address to serve gRPC on', '127.0.0.1')
  .option('--grpc-port <port>', 'port to serve gRPC on (0 = any free port)', '0')
  .option('--metrics <host:port>', 'serve Prometheus metrics on GET /metrics at this address (PORT alone: loopback; 0 for any free port)')
  .option('--dashboard <host:port>', 'serve the web dashboard at this address (PORT alone: loopback): nodes, queue, jobs, models, burst, live; cancel with the admin token')
  .option('--alert-webhook <url>', 'also POST model alerts (error, drift, recovered, margin) as JSON to this URL')
  .option('--federated [min-deltas]', 'merge agents\' weight deltas into new global model versions when MIN-DELTAS have arrived (default 2; models/README.md)')
  .option('--burst <config>', 'cloud burst: launch nodes when the queue would miss its SLAs, give them back when idle (YAML/JSON; coordinator/README.md)')
  .option('--burst-dry-run', 'with --burst: decide and log what it would launch and why, launch nothing')
  .option('--event-log <file>', 'while leading, append the events fed to the leader\'s core to FILE (JSON lines), for `prescient replay`')
  .option('--config <file>', 'these settings from a YAML or JSON file, keys in snake_case (event_log for --event-log); a flag given here wins')
  .addHelpText('after', examples(
    'prescient coordinator                                      # run as many as you like; one leads',
    'prescient coordinator --placement spread --retrain weekly',
    'prescient coordinator --config /etc/prescient/coordinator.yaml --grpc-port 7400',
  ))
  .action(async (_o, cmd: Command) => {
    const o = await withConfigFile(cmd, 'coordinator');
    const [{ startCoordinator }, { parseSchedule, parseWindow }, { parseReservationPolicy }, { placementPolicy }] = await Promise.all([
      import('../coordinator.js'), import('../retrain/index.js'), import('../sizing/index.js'), import('../placement/index.js'),
    ]);
    const alertWebhook = checkWebhook(o.alertWebhook);
    const burst = await burstOptions(o.burst, !!o.burstDryRun);
    const reservation = parseReservationPolicy(o.reservation);
    let policy;
    try {
      policy = placementPolicy(o.placement);
    } catch (e) {
      throw new ConfigError('--placement', (e as Error).message);
    }
    const retrain = o.retrain ?? process.env.PRESCIENT_RETRAIN;
    const coverage = o.coverage === undefined ? undefined : Number(o.coverage);
    if (coverage !== undefined && !(coverage >= 0.5 && coverage <= 0.999)) throw new ConfigError('--coverage', `must be between 0.5 and 0.999, got ${o.coverage}`);
    const c = await startCoordinator({
      id: o.id, endpoints: endpointsOf(o), validation: validation(), grpcHost: o.grpcHost, grpcPort: Number(o.grpcPort), modelDir: modelDir(), coverage, reservation, policy,
      retrain: retrain ? { schedule: parseSchedule(retrain), windowMs: parseWindow(o.retrainWindow) } : undefined,
      alertWebhook,
      federation: federationConfig(o.federated),
      burst,
      eventLog: o.eventLog,
      metrics: metricsListen(o.metrics),
    });
    const dash = o.dashboard === undefined ? undefined : await startDashboard(c, parseListen(String(o.dashboard), '--dashboard'), endpointsOf(o).consul_http).catch(async (e: Error) => { await c.stop(); throw e; });
    untilSignal(async () => { await dash?.close(); await c.stop(); });
  });

/** The port an agent set up by `prescient join` serves /metrics on (deploy/prometheus/prometheus.yml). */
const AGENT_METRICS_PORT = 9465;

/** `--dashboard HOST:PORT`: the web dashboard (coordinator/dashboard), fed from this coordinator's NATS connection. */
async function startDashboard(c: import('../coordinator.js').CoordinatorHandle, at: { host: string; port: number }, consulHttp: string) {
  const [{ serveDashboard }, { dashboardSource }, { ModelRegistry }, { ensureSecret }] = await Promise.all([
    import('../dashboard/index.js'), import('./dashboard-source.js'), import('../../models/index.js'), import('../../shared/index.js'),
  ]);
  const { memberLogger, sentenceLog } = await import('../../shared/log.js');
  const write = sentenceLog(memberLogger(`coordinator/${c.id}`));
  const log: Log = (m, level) => write(`[dashboard] ${m}`, level);
  const source = await dashboardSource({ nc: c.bus, consulHttp, registry: new ModelRegistry(modelDir()), log });
  const adminToken = ensureSecret(pkiPath(), 'dashboard');
  const d = await serveDashboard({ source, host: at.host, port: at.port, adminToken, log }).catch((e: Error) => { source.close(); throw new ConfigError('--dashboard', `could not serve on ${at.host}:${at.port}: ${e.message}`); });
  log(`serving on http://${d.address}/ (read-only; cancel and stop with the admin token in ${path.join(pkiPath(), 'secrets', 'dashboard')})`);
  return { address: d.address, close: async () => { await d.close(); source.close(); } };
}

/** `--metrics HOST:PORT`: where to serve Prometheus metrics (none when not given). */
const metricsListen = (v: string | number | undefined) => (v === undefined ? undefined : parseListen(String(v), '--metrics'));

/** `--burst <file> [--burst-dry-run]`: the validated configuration and its provider (verified at start). */
async function burstOptions(file: string | undefined, dryRun: boolean) {
  if (file === undefined) {
    if (dryRun) throw new ConfigError('--burst-dry-run', 'needs --burst <config>');
    return undefined;
  }
  const { createProvider, loadBurstConfig } = await import('../burst/index.js');
  const config = loadBurstConfig(file);
  if (dryRun) config.dry_run = true;
  return { config, provider: await createProvider(config) };
}

/** `--federated [min-deltas]`: off, on (2 deltas a round), or on with that many. */
function federationConfig(v: string | boolean | undefined) {
  if (v === undefined || v === false) return undefined;
  const minDeltas = v === true ? 2 : Number(v);
  if (!Number.isInteger(minDeltas) || minDeltas < 1) throw new ConfigError('--federated', `must be a whole number of deltas of at least 1, got ${JSON.stringify(v)}`);
  return { minDeltas };
}

/** `--learn [runs]`: fine-tune on this node's runs every RUNS runs (default 50) and send weight deltas; global versions kept in STATE/node-models/NODE. */
function learnConfig(v: string | boolean | undefined, node: string | undefined) {
  if (v === undefined || v === false) return undefined;
  const everyRuns = v === true ? 50 : Number(v);
  if (!Number.isInteger(everyRuns) || everyRuns < 1) throw new ConfigError('--learn', `must be a whole number of runs of at least 1, got ${JSON.stringify(v)}`);
  return { everyRuns, modelDir: path.join(dir(), 'node-models', node ?? 'local') };
}

function checkWebhook(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) throw new ConfigError('--alert-webhook', `must be an http(s) URL, got ${JSON.stringify(url)}`);
  return url;
}

/**
 * What a node grants and where it writes: the agent's, `dev`'s and `calibrate`'s. Calibration
 * enforces nothing (its encodes are pinned to the granted cores only), so it takes these and
 * not the enforcement flags below.
 */
const nodeOptions = (cmd: Command, outputDir = 'where encoded files are written (default: STATE/output/NODE)') => cmd
  .option('--node-id <id>', 'name of this node (default: hostname)')
  .option('--cores <list>', 'CPU cores granted to this agent, e.g. 0-3,6 (default: all it may use)')
  .option('--memory-gb <gb>', 'memory granted to this agent (default: all)', parseFloat)
  .option('--bandwidth-mbps <mbps>', 'I/O bandwidth this node offers', parseFloat)
  .option('--output-dir <dir>', outputDir)
  .option('--sample-ms <ms>', 'how often a running encode is sampled into QuestDB (default: 1000)')
  .option('--config <file>', 'these settings from a YAML or JSON file, keys in snake_case (memory_gb for --memory-gb); a flag given here wins');

const agentOptions = (cmd: Command) => nodeOptions(cmd)
  .option('--accounted-only <resources>', 'reserve and measure but do not enforce these, comma-separated: cpu,memory,gpu,bandwidth')
  .option('--shape-interfaces <devs>', 'interfaces whose egress is shaped per task, comma-separated; \'\' for none (default: those of the default routes)');

/** The command's options with its `--config` file's settings under them (every problem in the file reported at once). */
async function withConfigFile(cmd: Command, kind: 'agent' | 'coordinator') {
  const file = cmd.opts().config as string | undefined;
  if (file !== undefined) {
    const { applyConfigFile, AGENT_CONFIG, COORDINATOR_CONFIG } = await import('./config-file.js');
    applyConfigFile(cmd, file, kind === 'agent' ? AGENT_CONFIG : COORDINATOR_CONFIG);
  }
  return cmd.opts();
}

endpointOptions(agentOptions(program.command('agent').description('run a node agent: registers this node and runs the encodes it is given')))
  .option('--grpc-host <host>', 'address to serve gRPC on', '127.0.0.1')
  .option('--grpc-port <port>', 'port to serve gRPC on (0 = any free port)', '0')
  .option('--metrics <host:port>', 'serve Prometheus metrics on GET /metrics at this address (PORT alone: loopback; 0 for any free port)')
  .option('--learn [runs]', 'federated learning: every RUNS runs (default 50) fine-tune the global model on this node\'s runs and send the weight delta')
  .option('--drain-timeout <seconds>', 'on SIGTERM/SIGINT: take no new work and wait this long for running encodes to finish, then hand the rest back and deregister', '60')
  .addHelpText('after', examples(
    'prescient agent --node-id enc-1 --cores 0-3 --memory-gb 8',
    'prescient agent --config /etc/prescient/agent.yaml                 # what `prescient join` wrote',
    'prescient agent --cores 0-7 --accounted-only memory,bandwidth      # reserve both, enforce neither',
  ))
  .action(async (_o, cmd: Command) => {
    const o = await withConfigFile(cmd, 'agent');
    const drainS = Number(o.drainTimeout);
    if (!(Number.isFinite(drainS) && drainS >= 0 && drainS <= 86_400)) throw new ConfigError('--drain-timeout', `must be between 0 and 86400 seconds, got ${JSON.stringify(o.drainTimeout)}`);
    const { startAgent } = await import('../../node-agent/index.js');
    const a = await startAgent({ ...(await agentConfig(o)), endpoints: endpointsOf(o), learn: learnConfig(o.learn, o.nodeId), metrics: metricsListen(o.metrics) });
    // systemd's stop (SIGTERM) drains: the unit's TimeoutStopSec is longer than the drain.
    untilSignal(async () => { await a.drain(drainS * 1000); await a.stop(); });
  });

async function agentConfig(o: Record<string, string | number | undefined>) {
  const { parseResourceList } = await import('../../node-agent/enforce/index.js');
  const node = (o.nodeId as string | undefined) ?? undefined;
  const base = path.join(dir(), 'output', node ?? 'local');
  return {
    nodeId: node, validation: validation(),
    grant: { cores: o.cores as string | undefined, memoryGb: o.memoryGb as number | undefined, bandwidthMbps: o.bandwidthMbps as number | undefined },
    outputDir: (o.outputDir as string | undefined) ?? base,
    spoolDir: path.join(dir(), 'spool', node ?? 'local'),
    grpcHost: o.grpcHost as string | undefined, grpcPort: o.grpcPort === undefined ? undefined : Number(o.grpcPort),
    sampleIntervalMs: o.sampleMs === undefined ? undefined : Number(o.sampleMs),
    enforcement: {
      accounted_only: o.accountedOnly ? parseResourceList(String(o.accountedOnly)) : undefined,
      shape_interfaces: o.shapeInterfaces === undefined ? undefined : String(o.shapeInterfaces).split(',').map((d) => d.trim()).filter(Boolean),
    },
  };
}

program.command('plan').description('capacity planning: simulate a workload on a fleet under several reservation policies, the leader\'s own scheduler deciding (waits per SLA class, kills, cost, a recommendation); or, given a job file, what the live cluster would do with it now')
  .argument('[job]', 'a job file: show its prediction with bounds, the node the leader would pick now (or why none) and its estimated start; nothing is submitted')
  .option('--workload <file>', 'job templates with arrival rates (or counts), SLA classes and deadlines (YAML/JSON; coordinator/plan/inputs.ts)')
  .option('--fleet <file>', 'node types with counts, cores, memory, GPUs and prices (YAML/JSON)')
  .option('--log <file>', 'instead of --workload: replay recorded encodes (a `prescient model export` or calibration CSV, or with --mapping any CSV/TSV log) with their actual use')
  .option('--mapping <file>', 'with --log: a third party\'s log, read through this mapping of its columns (the model import\'s format, models/README.md); its time column, if mapped, gives the arrivals')
  .option('--encoding <name>', 'with --mapping: the log\'s text encoding (default: detected; utf-8, windows-1252, utf-16le, …)')
  .option('--rate <rate>', 'with --mapping, for a log without a time column: one row arrives per 1/RATE (120/h, 2/m), in the log\'s order (default: all at once)')
  .option('--questdb <span>', 'instead of --workload: replay the encodes QuestDB recorded over the last SPAN (e.g. 24h, 7d), with their actual use')
  .option('--reservation <policy>', 'with a job file: the reservation policy the leader runs (predictive, fixed-slots:N, one-core)', 'predictive')
  .option('--placement <policy>', `with a job file: the placement policy the leader runs (${POLICY_NAMES.join(', ')})`, 'best-fit')
  .option('--policies <list>', 'reservation policies compared, comma-separated: predictive, fixed-slots:N, one-core, oracle (reserves each job\'s actual use)', 'predictive,fixed-slots:2,one-core,oracle')
  .option('--seed <n>', 'arrivals and actual use are drawn with this seed: the same seed gives the same report', '1')
  .option('--error-scale <k>', 'widen (>1) or narrow (<1) the model\'s spread of actual use around its prediction (1: as its bounds claim)', '1')
  .option('--model <file>', 'the model that predicts (default: the shipped model)')
  .option('--charts <dir>', 'also write the charts (SVG, drawn by Vega-Lite) and a self-contained report.html to DIR')
  .option('--find', 'search for the cheapest fleet of the fleet file\'s node types (their counts are where it starts) that meets --target, with the first of --policies')
  .option('--target <list>', 'with --find, comma-separated: CLASS.p95_wait<=SPAN, missed_deadlines<=N', 'premium.p95_wait<=30s,missed_deadlines<=0')
  .option('--json', 'print the report as JSON')
  .addHelpText('after', `
A job's actual use is its prediction for the cores it got, times a residual drawn per job from
the model's own spread; an encode whose actual peak memory passes its reservation is killed and
re-queued, as on a real node. Nothing is submitted and no cluster is needed.

Examples:
  prescient plan --workload deploy/plan/workload.yaml --fleet deploy/plan/fleet.yaml --policies predictive,fixed-slots:2,oracle
  prescient plan job.yaml                               # against the running cluster, like nomad job plan
  prescient plan --log measurements.tsv --mapping models/mappings/transcoding-measurements.yaml --rate 600/h --fleet deploy/plan/fleet.yaml
  prescient plan --workload deploy/plan/workload.yaml --fleet deploy/plan/fleet.yaml --find --target 'premium.p95_wait<=10s,standard.p95_wait<=2m'`)
  .action(async (job: string | undefined, o) => {
    if (job !== undefined) {
      if (o.workload || o.fleet) throw new ConfigError('plan', 'give a job file, or --workload and --fleet, not both');
      const docs = await readJobs(job);
      if (docs.length !== 1) throw new ConfigError(job, `plan takes one job, this file has ${docs.length}`);
      (await import('../sizing/index.js')).parseReservationPolicy(String(o.reservation));
      if (!(POLICY_NAMES as readonly string[]).includes(String(o.placement))) throw new ConfigError('--placement', `must be one of ${POLICY_NAMES.join(', ')}, got ${JSON.stringify(o.placement)}`);
      return (await import('./fleet.js')).planLive(docs[0], { json: o.json, model: o.model ? path.resolve(String(o.model)) : undefined, reservation: o.reservation, placement: o.placement }, dir(), validation());
    }
    const sources = [o.workload, o.log, o.questdb].filter((x) => x !== undefined).length;
    if (sources !== 1 || !o.fleet) throw new ConfigError('plan', 'give --fleet and one of --workload, --log, --questdb (a simulation), or a job file (what the live cluster would do with it)');
    const [planning, { DEFAULT_MODEL_PATH, loadModelFile, exportTrainingRuns, trainingRunsFromCsv }] = await Promise.all([import('../plan/index.js'), import('../../models/index.js')]);
    const policies = String(o.policies).split(',').map((x) => x.trim()).filter(Boolean);
    const bad = policies.filter((x) => !planning.isPlanPolicy(x));
    if (!policies.length || bad.length) throw new ConfigError('--policies', `${bad.length ? `${bad.map((x) => JSON.stringify(x)).join(', ')} ${bad.length > 1 ? 'are' : 'is'} not a policy` : 'is empty'}: use predictive, fixed-slots:N (N from 1 to 999), one-core or oracle`);
    const seed = Number(o.seed), errorScale = Number(o.errorScale);
    if (!Number.isInteger(seed)) throw new ConfigError('--seed', `must be a whole number, got ${JSON.stringify(o.seed)}`);
    if (!(errorScale >= 0 && errorScale <= 10)) throw new ConfigError('--error-scale', `must be between 0 and 10, got ${JSON.stringify(o.errorScale)}`);
    if (o.mapping === undefined) {
      for (const flag of ['encoding', 'rate'] as const) if (o[flag] !== undefined) throw new ConfigError(`--${flag}`, 'goes with --log and --mapping (a third party\'s log)');
    } else if (!o.log) throw new ConfigError('--mapping', 'maps the columns of a log: give the log with --log');
    const fleet = planning.readFleet(String(o.fleet));
    let workload;
    /** What replaying a third party's log gave (--mapping): its import report and how arrivals were set. */
    let log: (import('./imported.js').ImportReport & { mapping: string; arrivals: string; measured: string[] }) | undefined;
    /** The same in words, opening the plan's text output. */
    let logLines: string[] = [];
    if (o.workload) workload = planning.readWorkload(String(o.workload));
    else if (o.mapping !== undefined) {
      const [imported, { parseMapping }] = await Promise.all([import('./imported.js'), import('../../models/data/mapping.js')]);
      const encoding = imported.checkEncoding(o.encoding as string | undefined);
      for (const [flag, file] of [['--log', o.log], ['--mapping', o.mapping]]) if (!existsSync(String(file))) throw new ConfigError(flag, `${file} does not exist`);
      const r = planning.mappedWorkload(readFileSync(String(o.log)), parseMapping(readFileSync(String(o.mapping), 'utf8'), String(o.mapping)), { source: String(o.log), encoding, rate: o.rate as string | undefined });
      log = { ...imported.importReportOf(String(o.log), r, r.used), mapping: String(o.mapping), arrivals: r.arrivals, measured: r.measured };
      logLines = [...imported.describeImport(log), `  mapping: ${o.mapping}`, `  arrivals: ${r.arrivals}`,
        `  measured: ${r.measured.join(', ')}; what the log lacks is drawn per job from the model's spread`, ''];
      if (!r.used) throw new ConfigError('--log', `no row of ${o.log} can be replayed:\n${logLines.join('\n').trim()}`);
      workload = r.workload;
    } else {
      if (o.questdb !== undefined && !(planning.spanMs(String(o.questdb)) > 0)) throw new ConfigError('--questdb', `must be a span such as 24h or 7d, got ${JSON.stringify(o.questdb)}`);
      const runs = o.log
        ? trainingRunsFromCsv(readFileSync(String(o.log), 'utf8'))
        : await exportTrainingRuns({ httpBase: loadEndpoints(dir()).questdb_http, from: new Date(Date.now() - planning.spanMs(String(o.questdb))), status: 'succeeded' });
      if (!runs) throw new ConfigError('--log', `${o.log} is not an export of recorded runs (prescient model export, or models/default/calibration-runs-*.csv)`);
      const t = planning.traceWorkload(runs);
      if (!t.used) throw new ConfigError(o.log ? '--log' : '--questdb', `no succeeded run with a schema and its measured figures among ${runs.length}`);
      if (!o.json) console.error(`replaying ${t.used} recorded encodes (${t.skipped} left out: not succeeded, or no schema or figures)`);
      workload = t.workload;
    }
    const model = loadModelFile(o.model ? path.resolve(String(o.model)) : DEFAULT_MODEL_PATH);
    if (o.find) {
      const found = planning.findFleet({ workload, fleet, model, policy: policies[0] as import('../plan/index.js').PlanPolicy, seed, targets: planning.parseTargets(String(o.target)) });
      const counts = found.fleet.nodes.map((n) => `${n.count} × ${n.type}`).join(' + ');
      const r = found.report;
      print(o.json, log ? { ...found, log } : found, () => [
        ...logLines,
        `cheapest fleet meeting ${o.target} under ${r.policy}: ${counts} (${found.cost_per_hour.toFixed(2)} per hour); one node fewer of any type misses the targets`,
        `  ${r.succeeded}/${r.jobs} jobs, ${Object.entries(r.classes).map(([c, f]) => `${c} p95 wait ${f!.wait_p95_s.toFixed(1)} s`).join(', ')}, ${Object.values(r.classes).reduce((s2, f) => s2 + (f?.missed_deadlines ?? 0), 0)} missed deadlines, ${r.memory_kills} memory kills`,
        `  (${found.runs} simulations, seed ${seed})`,
      ].join('\n'));
      return;
    }
    const { report, runs } = planning.plan({ workload, fleet, model, policies: policies as import('../plan/index.js').PlanPolicy[], seed, errorScale, sampleMs: o.charts ? 10_000 : 0 });
    const charts = o.charts ? await planning.writeCharts(path.resolve(String(o.charts)), report, runs) : undefined;
    print(o.json, { ...report, ...(log && { log }), ...(charts && { charts }) }, () => [...logLines, formatPlan(report)].join('\n') + (charts ? `\ncharts: ${charts.join(', ')}` : ''));
  });

/** The plan report as a table per policy and the recommendation. */
function formatPlan(r: import('../plan/index.js').PlanReport): string {
  const classes = [...new Set(r.policies.flatMap((p) => Object.keys(p.classes)))];
  const head = ['policy', 'done', 'makespan', 'jobs/h', 'sustained jobs/h', ...classes.map((c) => `${c} p95 wait`), 'missed', 'mem kills', 'cores used/reserved', 'node-h', 'cost'];
  const rows = r.policies.map((p) => [
    p.policy, `${p.succeeded}/${p.jobs}`, `${(p.makespan_s / 3600).toFixed(2)} h`, p.throughput_per_hour.toFixed(0), Number.isFinite(p.sustained_per_hour) ? p.sustained_per_hour.toFixed(0) : '-',
    ...classes.map((c) => (p.classes[c] && Number.isFinite(p.classes[c]!.wait_p95_s) ? `${p.classes[c]!.wait_p95_s.toFixed(0)} s` : '-')),
    String(Object.values(p.classes).reduce((s, f) => s + (f?.missed_deadlines ?? 0), 0)), String(p.memory_kills),
    Number.isFinite(p.reserved_vs_used.cores_used_share) ? `${(p.reserved_vs_used.cores_used_share * 100).toFixed(0)} %` : '-', p.node_hours.toFixed(1), p.cost.toFixed(2),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  const refused = r.policies[0]?.refused.filter((x) => x.state === 'rejected') ?? [];
  return [
    line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), '',
    ...refused.map((x) => `refused: ${x.jobs} job(s) of ${x.template}: ${x.reason}`),
    r.recommendation.sentence,
    `(seed ${r.seed}, model ${r.model_version}${r.error_scale !== 1 ? `, its spread ×${r.error_scale}` : ''})`,
  ].join('\n');
}

program.command('join').description('enrol this host as a node with a join token, and write the agent\'s config file (deploy/install.sh --agent --join does this)')
  .requiredOption('--token <token>', 'from `prescient certs join-token` on the CA host (or $PRESCIENT_JOIN_TOKEN)', process.env.PRESCIENT_JOIN_TOKEN)
  .option('--join <nats-url>', 'the cluster\'s NATS as this host reaches it (default: the URL in the token)')
  .option('--node-id <id>', 'name of this node (default: hostname)')
  .option('--cores <list>', 'CPU cores granted to the agent, e.g. 0-3,6 (default: all)')
  .option('--memory-gb <gb>', 'memory granted to the agent (default: all)', parseFloat)
  .option('--grpc-host <address>', 'address other hosts reach this agent at (default: this host\'s address on the route to NATS)')
  .option('--grpc-port <port>', 'port the agent serves gRPC on (0 = any free port)', '0')
  .option('--write-config <file>', 'where to write the agent\'s settings (default: STATE/agent.yaml)')
  .option('--json', 'print what was done as JSON')
  .addHelpText('after', `
Examples (on the new host; the token from \`prescient certs join-token\` on the CA host):
  prescient --state-dir /var/lib/prescient join --token "$TOKEN" --join nats://10.0.0.5:4222 --write-config /etc/prescient/agent.yaml
  prescient --state-dir /var/lib/prescient agent --config /etc/prescient/agent.yaml`)
  .action(async (o) => {
    const p = await pki();
    const t = p.decodeJoinToken(String(o.token));
    if (Date.now() > t.expires_at) throw new ConfigError('--token', `expired at ${new Date(t.expires_at).toISOString()}: ask for a new one`);
    const natsUrl = o.join === undefined ? t.endpoints.nats_url : String(o.join);
    if (!URL.canParse(natsUrl) || !/^(nats|tls):$/.test(new URL(natsUrl).protocol)) throw new ConfigError('--join', `must be the cluster's NATS URL (nats://host:port), got ${JSON.stringify(natsUrl)}`);
    const nodeId = String(o.nodeId ?? os.hostname());
    if (!p.MEMBER_NAME.test(nodeId)) throw new ConfigError('--node-id', `must match ${p.MEMBER_NAME}, got ${JSON.stringify(nodeId)}`);
    const { mkdirSync, writeFileSync } = await import('node:fs');
    // This host's copy of the CA certificate: one from another cluster is not overwritten.
    const caFile = path.join(pkiPath(), 'ca.crt');
    mkdirSync(pkiPath(), { recursive: true, mode: 0o700 });
    if (existsSync(caFile) && readFileSync(caFile, 'utf8').trim() !== t.ca.trim()) throw new ConfigError(caFile, 'is another cluster\'s CA: this host belongs to another cluster (use another --state-dir)');
    if (!existsSync(caFile)) writeFileSync(caFile, t.ca, { mode: 0o644 });
    if (t.questdb_password) {
      mkdirSync(path.join(pkiPath(), 'secrets'), { recursive: true, mode: 0o700 });
      writeFileSync(p.secretFile(pkiPath(), 'questdb'), `${t.questdb_password}\n`, { mode: 0o600 });
    }
    const { nodeIdentity } = await import('../../node-agent/index.js');
    const bundle = Buffer.from(JSON.stringify({ ca: t.ca, cert: t.cert, key: t.key })).toString('base64');
    const say = (m: string) => { if (!o.json) console.error(m); };
    await nodeIdentity({ pkiDir: pkiPath(), nodeId, consulHttp: t.endpoints.consul_http, bundle, log: say });
    // The token's enrolment pair has done its work here: only the node's own key stays.
    const { X509Certificate } = await import('node:crypto');
    const enrolled = p.memberOf(p.subjectFields(new X509Certificate(t.cert).subject));
    if (enrolled?.role === 'enrol') p.forget(pkiPath(), enrolled);
    const grpcHost = o.grpcHost === undefined ? await addressToward(new URL(natsUrl).hostname) : String(o.grpcHost);
    const config = {
      node_id: nodeId, nats_url: natsUrl, consul_http: t.endpoints.consul_http, questdb_http: t.endpoints.questdb_http, questdb_pg: t.endpoints.questdb_pg,
      grpc_host: grpcHost, grpc_port: Number(o.grpcPort),
      // Prometheus scrapes agents from elsewhere: /metrics on the host's address toward the cluster (no job content in it).
      metrics: `${grpcHost.includes(':') ? `[${grpcHost}]` : grpcHost}:${AGENT_METRICS_PORT}`,
      ...(o.cores === undefined ? {} : { cores: String(o.cores) }), ...(o.memoryGb === undefined ? {} : { memory_gb: o.memoryGb }),
    };
    const { AGENT_CONFIG } = await import('./config-file.js');
    const { whyNotAll } = await import('../../shared/index.js');
    const problems = whyNotAll(AGENT_CONFIG, config);
    if (problems.length) throw new ConfigError('join', problems.join('; '));
    const file = path.resolve(String(o.writeConfig ?? path.join(dir(), 'agent.yaml')));
    const { default: YAML } = await import('yaml');
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, `# Written by \`prescient join\` on ${new Date().toISOString()}; read by \`prescient agent --config ${file}\`.\n${YAML.stringify(config)}`, { mode: 0o644 });
    print(o.json, { config: file, pki_dir: pkiPath(), ...config }, () => `enrolled ${nodeId}: certificate in ${pkiPath()}, agent settings in ${file}; start it with \`prescient --state-dir ${dir()} agent --config ${file}\``);
  });

/** This host's address on the route to `host` (a UDP socket's local end once connected: nothing is sent). */
async function addressToward(host: string): Promise<string> {
  const { createSocket } = await import('node:dgram');
  const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => { sock.once('error', reject); sock.connect(9, host, () => resolve()); });
    return sock.address().address;
  } catch (e) {
    throw new ConfigError('--grpc-host', `could not tell this host's address toward ${host} (${(e as Error).message}); give --grpc-host`);
  } finally {
    sock.close();
  }
}

agentOptions(program.command('dev').description('one coordinator and one agent in one process against the local stack (starts it if needed)'))
  .addHelpText('after', examples('prescient dev', 'prescient dev --cores 0-1 --memory-gb 2        # leave the other cores alone'))
  .action(async (_o, cmd: Command) => {
    const o = await withConfigFile(cmd, 'agent');
    const [{ stackUp }, { startCoordinator }, { startAgent }] = await Promise.all([localStack(), import('../coordinator.js'), import('../../node-agent/index.js')]);
    await stackUp({ stateDir: dir(), log: (l) => console.error(l) });
    const c = await startCoordinator({ id: 'dev', endpoints: loadEndpoints(dir()), validation: validation(), modelDir: modelDir() });
    const a = await startAgent({ ...(await agentConfig({ ...o, nodeId: o.nodeId ?? 'dev-node' })), endpoints: loadEndpoints(dir()) });
    console.log(`dev cluster running: coordinator ${c.address}, agent ${a.address}. Submit with \`prescient submit job.yaml --wait\`; Ctrl-C stops.`);
    untilSignal(async () => { await a.stop(); await c.stop(); });
  });

nodeOptions(program.command('calibrate').description('run a matrix of short real encodes on this node and record them in QuestDB (first data for a new hardware class)'),
  'where each encode is written before it is measured and removed (default: STATE/calibration/output)')
  .option('--codecs <list>', 'codecs to include, comma-separated (default: h264,hevc,vp9,av1)')
  .option('--resolutions <list>', 'output sizes, comma-separated (default: 320x240,640x360,1280x720)')
  .option('--files <list>', 'input files to add as content, comma-separated (must be under the allowed input roots)')
  .option('--no-synthetic', 'use only the given files, no synthetic sources')
  .option('--duration <seconds>', 'length of each synthetic clip', '2')
  .option('--durations <list>', 'several clip lengths in seconds, comma-separated (overrides --duration)')
  .option('--frame-rates <list>', 'synthetic frame rates, comma-separated (default: 25)')
  .option('--crf-offsets <list>', 'CRFs as offsets from each encoder\'s mid CRF, comma-separated (default: 0)')
  .option('--bitrate-scales <list>', 'bitrates as multiples of the size-scaled default, comma-separated (default: 1)')
  .option('--core-counts <list>', 'core counts to grant, comma-separated (default: all granted cores)')
  .option('--limit <n>', 'at most this many runs, spread evenly over the matrix')
  .option('--plan <file>', 'make exactly the runs this YAML file lists ([{ cores, job }]) instead of the matrix')
  .option('--design', 'draw varied runs at random (seeded) until --budget is spent, instead of the matrix')
  .option('--budget <seconds>', 'with --design: estimated encode time to spend', '3600')
  .option('--max-run <seconds>', 'with --design: no run estimated longer than this', '60')
  .option('--seed <n>', 'with --design: the draw', '1')
  .option('--no-quality', 'skip the PSNR/SSIM pass after each encode')
  .option('--run-timeout <seconds>', 'stop a run still encoding after this long (recorded as cancelled, never trained on)')
  .option('--dry-run', 'only list the runs')
  .option('--json', 'print the report as JSON')
  .addHelpText('after', examples(
    'prescient calibrate --dry-run --limit 40                         # list the runs first',
    'prescient calibrate --limit 40 --cores 0-3',
    'prescient calibrate --design --budget 3600 --files a.mp4,b.mkv',
    'prescient calibrate --config /etc/prescient/agent.yaml --output-dir /scratch/cal',
  ))
  .action(async (_o, cmd: Command) => {
    const o = await withConfigFile(cmd, 'agent');
    const [{ runCalibration, probeInput, ProbeCache, parseCalibrationPlan, designCalibration, detectHardware }, { DEFAULT_CONTENTS }] = await Promise.all([
      import('../../node-agent/index.js'), import('../../node-agent/calibrate/index.js'),
    ]);
    const list = (v: string | undefined) => (v ? String(v).split(',').map((x) => x.trim()).filter(Boolean) : undefined);
    const nums = (v: string | undefined) => list(v)?.map((x) => {
      const n = Number(x);
      if (!Number.isFinite(n)) throw new ConfigError('calibrate', `${JSON.stringify(x)} is not a number`);
      return n;
    });
    const base = await agentConfig({ ...o, nodeId: o.nodeId ?? os.hostname() });
    const files = list(o.files)?.map((f) => ({ path: path.resolve(f) }));
    const cores = (await detectHardware(base.grant)).core_ids.length;
    let plan = o.plan ? parseCalibrationPlan(readFileSync(o.plan, 'utf8'), o.plan, base.validation, cores) : undefined;
    if (o.design) {
      const cache = new ProbeCache();
      const probed = [];
      for (const f of files ?? []) {
        const probe = await probeInput({ kind: 'file', path: f.path }, { by: 'node', cache });
        if (probe) probed.push({ path: f.path, probe }); else console.error(`${f.path}: cannot be probed, left out`);
      }
      const { DEFAULT_MODEL_PATH, loadModelFile } = await import('../../models/index.js');
      const model = loadModelFile(DEFAULT_MODEL_PATH);
      plan = designCalibration({
        files: probed, synthetic: o.synthetic !== false, core_counts: list(o.coreCounts)?.map(Number) ?? [cores],
        budget_s: Number(o.budget), max_run_s: Number(o.maxRun), seed: Number(o.seed), max_runs: o.limit === undefined ? undefined : Number(o.limit),
        estimate: (schema, n) => model.predict(schema, { cores: n }).expected.duration_s,
      }, base.validation);
    }
    const report = await runCalibration({
      plan, quality: o.quality, run_timeout_s: o.runTimeout === undefined ? undefined : Number(o.runTimeout),
      node_id: base.nodeId!, endpoints: o.dryRun ? undefined : loadEndpoints(dir()), grant: base.grant, validation: base.validation,
      // Its own spool: an agent on the same node owns (and locks) the agent spool.
      output_dir: o.outputDir === undefined ? path.join(dir(), 'calibration', 'output') : path.resolve(String(o.outputDir)), spool_dir: `${base.spoolDir}-calibrate`,
      sample_interval_ms: base.sampleIntervalMs, dry_run: !!o.dryRun, log: (m) => console.error(m),
      matrix: {
        codecs: list(o.codecs) as OutputCodec[] | undefined, resolutions: list(o.resolutions), duration_s: Number(o.duration),
        core_counts: list(o.coreCounts)?.map(Number), durations_s: nums(o.durations), frame_rates: nums(o.frameRates),
        crf_offsets: nums(o.crfOffsets), bitrate_scales: nums(o.bitrateScales), limit: o.limit === undefined ? undefined : Number(o.limit),
        contents: files || o.synthetic === false ? [...(o.synthetic === false ? [] : DEFAULT_CONTENTS), ...(files ?? [])] : undefined,
      },
      onRun: o.json ? undefined : (r, i, n) => console.log(`[${i + 1}/${n}] ${r.label}: ${r.ok ? `${r.duration_s!.toFixed(2)} s, ${r.cpu_cores!.toFixed(2)} cores, ${(r.memory_gb! * 1024).toFixed(0)} MB` : `FAILED ${r.error}`}`),
    });
    if (o.json) console.log(JSON.stringify(report, null, 2));
    else if (o.dryRun) console.log(report.outcomes.map((r) => r.label).join('\n') + `\n${report.planned} runs planned`);
    else console.log(`calibration on ${report.node_id} (${report.hardware.cpu_model}, ${report.hardware.core_ids.length} cores): ${report.runs} runs made, ${report.succeeded} succeeded, ${report.failed} failed in ${report.wall_s.toFixed(1)} s; ${report.unsent_rows} telemetry rows still spooled`);
    if (report.failed) process.exitCode = 1;
  });

// ── models ─────────────────────────────────────────────────────────────────────────────
const modelActions = () => import('./model.js');

/** Which QuestDB runs: `model train`, `evaluate` and `export`. */
const questdbOptions = (cmd: Command) => cmd
  .option('--from <time>', 'QuestDB runs that started at or after this ISO-8601 time')
  .option('--to <time>', 'QuestDB runs that started before this ISO-8601 time')
  .option('--window <span>', 'QuestDB runs of the last 30d, 12h, 2w …')
  .option('--node <id>', 'only runs of this node')
  .option('--codec <codec>', 'only runs of this codec');

/** Runs from QuestDB, or from a log: `model train` and `evaluate` (export writes QuestDB's runs only). */
const sourceOptions = (cmd: Command) => questdbOptions(cmd
  .option('--csv <file>', 'a CSV/TSV log of past encodes (with --mapping), or a file `prescient model export` wrote')
  .option('--mapping <file>', 'YAML/JSON mapping of the log\'s columns to schema fields and targets (models/README.md)')
  .option('--encoding <name>', 'text encoding of the log (utf-8, windows-1252, utf-16le, …); default: its byte order mark, else UTF-8 when valid, else windows-1252'));

const splitOption = (cmd: Command) => cmd.option('--split <mode>', 'held-out rows: hash (a fixed 20% by row key), time (the latest 20%) or none (every row trains; figures cross-validated by source)', 'hash');

const model = program.command('model').description('train, evaluate and manage the prediction models')
  .addHelpText('after', examples('prescient model train --promote', 'prescient model list', 'prescient model status --json'));

splitOption(sourceOptions(model.command('train')))
  .description('train a model on recorded runs or a log, register it, and (with --promote) put it in service if it is no worse')
  .option('--coverage <share>', 'coverage of the upper bounds (default 0.95)')
  .option('--version <name>', 'version name (default m-<time>)')
  .option('--promote', 'put it in service if it is no worse than the current model on the held-out rows')
  .option('--force', 'with --promote: put it in service without comparing')
  .option('--seed <n>', 'seed of the network initialisation and shuffling', '1')
  .option('--baseline', 'also print the baselines on the same split')
  .option('--json', 'print the result as JSON')
  .addHelpText('after', examples(
    'prescient model train --promote                          # on QuestDB\'s runs; in service if no worse',
    'prescient model train --window 30d --node enc-1 --baseline',
    'prescient model train --csv log.tsv --mapping models/mappings/transcoding-measurements.yaml',
  ))
  .action(async (o) => (await modelActions()).train(o, dir()));

splitOption(sourceOptions(model.command('evaluate')))
  .description('held-out MAE, MAPE, median APE, R², bound coverage and slack per target (--baseline: simple baselines on the same split; --test: every row of another file)')
  .option('--model <version|file>', 'a registered version or a model file (default: the one in service)')
  .option('--test <file>', 'score every row of this file instead, nothing held back: a log (with --mapping) or a file `prescient model export` wrote')
  .option('--coverage <share>', 'evaluate the bounds at this coverage instead of the model\'s own')
  .option('--baseline', 'also fit and evaluate the baselines (mean per codec, linear regression) on the same split')
  .option('--json', 'print the figures as JSON')
  .addHelpText('after', examples(
    'prescient model evaluate --baseline',
    'prescient model evaluate --model m-20240601 --split time',
    'prescient model evaluate --test other.tsv --mapping map.yaml --encoding windows-1252',
  ))
  .action(async (o, cmd: Command) => (await modelActions()).evaluate(o, cmd, dir()));

model.command('list').description('registered model versions, the one in service marked *')
  .option('--json', 'print as JSON')
  .addHelpText('after', examples('prescient model list', 'prescient model list --json'))
  .action(async (o) => (await modelActions()).list(o, dir()));

model.command('promote').description('put a registered version in service (coordinators pick it up within seconds)')
  .argument('<version>')
  .option('--reason <text>', 'why, for the history', 'promoted by hand')
  .addHelpText('after', examples('prescient model promote m-20240601', 'prescient model promote m-20240601 --reason "better on 4K"'))
  .action(async (version: string, o) => (await modelActions()).promote(version, o, dir()));

model.command('rollback').description('put the previously promoted version back in service')
  .option('--reason <text>', 'why, for the history', 'rolled back by hand')
  .addHelpText('after', examples('prescient model rollback', 'prescient model rollback --reason "memory alerts on enc-3"'))
  .action(async (o) => (await modelActions()).rollback(o, dir()));

model.command('history').description('promotions, rollbacks and registrations, oldest first')
  .option('--json', 'print as JSON')
  .addHelpText('after', examples('prescient model history', 'prescient model history --json'))
  .action(async (o) => (await modelActions()).history(o, dir()));

model.command('status').description('rolling error per model version, target, codec and node (MAPE, bias, bound coverage), online corrections, memory margins and open alerts')
  .option('--version <name>', 'only this model version')
  .option('--node <id>', 'only this node')
  .option('--json', 'print as JSON')
  .addHelpText('after', examples('prescient model status', 'prescient model status --node enc-1 --json'))
  .action(async (o) => (await modelActions()).status(o, dir()));

questdbOptions(model.command('export')).description('write recorded runs from QuestDB as CSV (the columns of models/data; `model train --csv FILE` reads it back)')
  .requiredOption('--out <file>', 'CSV file to write')
  .addHelpText('after', examples('prescient model export --out runs.csv', 'prescient model export --window 7d --node enc-1 --codec hevc --out enc-1-hevc.csv'))
  .action(async (o) => (await modelActions()).exportRuns(o, dir()));

model.command('pilots').description('add a pilot encode (the first frames, the job\'s own settings, one thread) to each succeeded run of an export that has none, measured on this machine; the files are rewritten in place')
  .argument('<files...>', 'CSV files `prescient model export` wrote (models/default/calibration-runs-*.csv)')
  .option('--media <dir>', 'where the runs\' file inputs are now, looked up by name (models/scripts/real-clips.sh DIR)')
  .option('--again', 'measure runs that have a pilot again, replacing it')
  .option('--json', 'print what was done as JSON')
  .addHelpText('after', examples('prescient model pilots models/default/calibration-runs-*.csv --media /tmp/media   # the clips: bash models/scripts/real-clips.sh /tmp/media'))
  .action(async (files: string[], o) => {
    const [{ addPilots }, { trainingRunsFromCsv, trainingRunsCsv }, { writeFileSync, renameSync }] = await Promise.all([
      import('../../node-agent/calibrate/pilots.js'), import('../../models/index.js'), import('node:fs')]);
    const cores = Array.from({ length: os.availableParallelism() }, (_, i) => i);
    const out: Record<string, unknown> = {};
    for (const f of files) {
      const runs = trainingRunsFromCsv(readFileSync(f, 'utf8'));
      if (!runs) throw new ConfigError('<files>', `${f} is not an export of recorded runs (prescient model export)`);
      const report = await addPilots(runs, { media_dir: o.media, again: o.again === true, core_ids: cores, log: o.json ? undefined : (m) => console.error(`  ${m}`) });
      writeFileSync(`${f}.tmp`, trainingRunsCsv(runs));
      renameSync(`${f}.tmp`, f);
      out[f] = report;
      if (!o.json) console.log(`${f}: ${report.added} pilots measured, ${report.had} had one, ${report.unreadable} inputs not found, ${report.failed} failed`);
    }
    if (o.json) console.log(JSON.stringify(out, null, 2));
  });

// ── fleet ──────────────────────────────────────────────────────────────────────────────
program.command('nodes').description('show each node: capacity, what is free, its reservations, and which resources are enforced or accounted-only')
  .option('--json', 'print the nodes as JSON (every field whole; the table cuts long cells to the terminal\'s width)')
  .addHelpText('after', examples('prescient nodes', 'COLUMNS=200 prescient nodes | less -S           # wider than 100 columns when piped', 'prescient nodes --json | jq \'.nodes[] | {node_id, cores}\''))
  .action(async (o) => (await import('./fleet.js')).nodes(o, dir()));

program.command('queue').description('show the queued jobs in the order they get resources: position, class, reason and estimated start; then the jobs still waiting in JetStream for a leader')
  .option('--json', 'print the queue as JSON')
  .addHelpText('after', examples('prescient queue', 'prescient queue --json | jq \'.queue[] | select(.deadline_at_risk)\''))
  .action(async (o) => (await import('./fleet.js')).queue(o, dir()));

program.command('replay').description('re-run a leader\'s event log (coordinator --event-log) through a fresh core and check that it decides the same')
  .argument('<file>', 'the event log: one JSON line per batch of events the leader\'s core was fed')
  .option('--json', 'print the result as JSON')
  .addHelpText('after', examples('prescient coordinator --event-log events.jsonl       # record while leading', 'prescient replay events.jsonl --json'))
  .action(async (file: string, o) => {
    const [{ replay }, { ModelRegistry }] = await Promise.all([import('../core/index.js'), import('../../models/index.js')]);
    const registry = new ModelRegistry(modelDir());
    const models = new Map<string, ResourcePredictorLike>();
    const predictorFor = (version: string, coverage?: number) => {
      const key = `${version}@${coverage ?? ''}`;
      if (!models.has(key)) models.set(key, registry.load(version, { coverage }));
      return models.get(key)!;
    };
    if (!existsSync(file)) throw new ConfigError('<file>', `${file} does not exist`);
    const r = replay(readFileSync(file, 'utf8').split('\n'), predictorFor);
    print(o.json, r, () => [
      `replayed ${r.batches} batch(es) of term(s) ${r.terms.join(', ')}: ${r.decisions} decision(s) logged`,
      r.differing ? `${r.differing} batch(es) decided differently; first:` : `every batch decided the same (${r.placements} placement(s))`,
      ...r.differences.slice(0, 1).map((d) => `  line ${d.batch} (term ${d.term})\n    logged:   ${JSON.stringify(d.logged)}\n    replayed: ${JSON.stringify(d.replayed)}`),
    ].join('\n'));
    if (r.differing) process.exitCode = 1;
  });

// ── cloud burst ────────────────────────────────────────────────────────────────────────
const scale = program.command('scale').description('cloud burst: the instances launched, the decisions made and why')
  .addHelpText('after', examples('prescient scale status'));
scale.command('status').description('show burst instances (type, state, spot, joined, draining, idle), the last decisions with their inputs and reasons, and the budget used this hour')
  .option('--json', 'print the status as JSON')
  .option('--last <n>', 'how many decisions to show', '10')
  .addHelpText('after', examples('prescient scale status', 'prescient scale status --last 30 --json'))
  .action(async (o) => {
    const last = Number(o.last);
    if (!Number.isSafeInteger(last) || last < 1) throw new ConfigError('--last', `must be a whole number ≥ 1, got ${JSON.stringify(o.last)}`);
    return (await import('./scale.js')).scaleStatus(o, dir());
  });

program.command('demo').description('the main job: bring up the stack and a local cluster, encode a demo batch, show predicted vs actual')
  .addOption(new Option('--agents <n>', 'number of node agents, each granted its own cores').default('2'))
  .option('--jobs <file>', 'job file to run instead of the built-in batch')
  .option('--keep', 'leave the stack running afterwards')
  .option('--json', 'print results as JSON')
  .addHelpText('after', examples('prescient demo', 'prescient demo --agents 3 --jobs my-batch.yaml --keep'))
  .action(async (o) => {
    const { runDemo } = await import('./demo.js');
    const agents = Number(o.agents);
    if (!Number.isInteger(agents) || agents < 1 || agents > 64) throw new ConfigError('--agents', `must be a whole number from 1 to 64, got ${JSON.stringify(o.agents)}`);
    process.exitCode = await runDemo({ stateDir: dir(), agents, jobsFile: o.jobs, keep: !!o.keep, json: !!o.json });
  });

// The top-level help lists --version, which main() reads before commander (model train has a
// --version of its own); only in the help, so commander suggests it nowhere else.
const versionOption = new Option('-V, --version', 'print the version (with --json: as JSON)');
let inHelp = false;
program.configureHelp({
  formatHelp(cmd, helper) {
    inHelp = true;
    try { return Help.prototype.formatHelp.call(this, cmd, helper); } finally { inHelp = false; }
  },
  visibleOptions(cmd) {
    const options = Help.prototype.visibleOptions.call(this, cmd);
    return inHelp ? [versionOption, ...options] : options;
  },
});

/** This build's version: package.json's, three levels above dist/coordinator/cli/. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** Runs the command line; every failure ends here, as JSON on stdout where --json was given, else as prose on stderr. */
async function main(): Promise<void> {
  const version = versionRequest(process.argv.slice(2));
  if (version) {
    const v = packageVersion();
    print(version.json, { name: 'prescient', version: v, node: process.version }, () => `prescient ${v}`);
    return;
  }
  try {
    await program.parseAsync();
  } catch (e) {
    const commander = (e as Error)?.name === 'CommanderError';
    // commander showed the help a user asked for: not a failure.
    if (commander && (e as { exitCode: number }).exitCode === 0) return;
    if (jsonOut) console.log(JSON.stringify(errorJson(e), null, 2));
    else if (!commander) console.error(errorText(e)); // commander has printed its own message
    process.exit(exitCodeOf(e));
  }
}

// Run when started as the program (also through a symlink on PATH), not when a test imports it.
const invoked = (() => { try { return realpathSync(process.argv[1]) === fileURLToPath(import.meta.url); } catch { return false; } })();
if (invoked) void main();
