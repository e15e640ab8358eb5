/**
 * The node agent: registers this node's real capacity with whichever coordinator leads,
 * heartbeats, accepts term-fenced assignments, runs each encode in the worker pool on the
 * cores it was granted, reports the outcome (retrying until a leader takes it) and records
 * one telemetry row per run.
 */
import os from 'node:os';
import path from 'node:path';
import { JSONCodec, type NatsConnection } from 'nats';
import { mkdirSync } from 'node:fs';
import {
  CoordinatorClient, ConsulLeaderLookup, NO_OWNER, followRevoked, agentService, callerOf, connectMember, disconnectMember, permissionDenied, pkiDirOf, redactText, type Identity, watchLeaderKey, fromAllocationMsg, serve, type grpc, validateEncodingSchema, validateInputPath, SchemaValidationError,
  type AgentHandlers, type Assignment, type AssignReply, type FailureKind, type EncodingSchema, type ResourceAllocation, type ResourceUsage, type RunningTaskMsg,
  type StackEndpoints, type TaskStatusReport, type TaskProgress, jobProgressSubject, effectiveOutput, type ValidationContext, toAllocationMsg,
} from '../shared/index.js';
import { allowedCores, detectHardware, gpuCapacity, type GrantOptions, type Hardware } from './hardware.js';
import { HostClaims } from './host-claims.js';
import { createEncodeRunner, type EncodeRunner, type MeasuredEncode } from './runner/index.js';
import { describeEnforcement, detectEnforcement, releaseEnforcement, type Enforcement, type EnforcementOptions } from './enforce/index.js';
import { AGENT_LINGER_MS, QuestDbTelemetrySink, type TelemetrySink } from './telemetry/index.js';
import { AgentMetrics } from './metrics.js';
import { memberLogger, sentenceLog, type Log } from '../shared/log.js';
import { LogShipper } from './logs.js';
import { dependencyChecks, serveMetrics } from '../shared/metrics.js';
import { RunRecorder } from './recorder.js';
import { ReportOutbox } from './outbox.js';
import { nodeIdentity } from './enrol.js';
import { ProbeCache, probeInput } from './ffmpeg/probe.js';
import { describeFfmpegPrivileges } from './ffmpeg/index.js';
import { runRow, startLearning, type LearnOptions, type Learning } from './learn/index.js';
import { FeedbackPublisher, OverrunWatch, completionReport, overrunReport, type ReportBasis } from './feedback.js';
import { hardwareClass } from '../models/index.js';

export interface AgentOptions {
  nodeId?: string;
  endpoints: StackEndpoints;
  /** This node's certificate (default: `node/<nodeId>` in the endpoints' pki_dir, issued there when this host holds the CA key). */
  identity?: Identity;
  /** A burst launch's enrolment (default PRESCIENT_ENROL_BUNDLE): used when this node has no certificate yet. */
  enrolBundle?: string;
  grant?: GrantOptions;
  validation: ValidationContext;
  /** Where finished outputs are written. */
  outputDir: string;
  /** Where telemetry waits while QuestDB is unreachable. */
  spoolDir: string;
  /** The host-wide file agents on this host claim their cores, memory and GPUs in (default host-claims.ts defaultClaimsFile). */
  hostClaimsFile?: string;
  grpcHost?: string;
  grpcPort?: number;
  /** How often a running encode is sampled (default 1000 ms). */
  sampleIntervalMs?: number;
  /** Resources to account for but not enforce (`--accounted-only`); by default all that this node can enforce are. */
  enforcement?: EnforcementOptions;
  /** Federated learning (node-agent/learn): fine-tune the global model on this node's runs and send weight deltas; `modelDir` keeps the global versions. */
  learn?: LearnOptions & { modelDir: string };
  /** Serve Prometheus metrics on this address (`--metrics HOST:PORT`; port 0 for any free one). */
  metrics?: { host: string; port: number };
  log?: Log;
}

interface Running {
  allocation: ResourceAllocation;
  /** Who submitted it (its progress subject names them). */
  owner: string;
  schema: EncodingSchema;
  predicted: ResourceUsage;
  modelVersion: string;
  attempt: number;
  startedAt: number;
  abort: AbortController;
  /** The leader asked for it to end (cancel, or stop for a live channel), as opposed to the agent stopping. */
  endRequested?: boolean;
}

export interface AgentHandle {
  nodeId: string;
  address: string;
  hardware: Hardware;
  /** What this node holds encodes to, per resource, as registered with the leader. */
  enforcement: Enforcement[];
  /** Task ids running now. */
  running(): string[];
  /** Leader term this agent has seen most recently (its fencing floor). */
  term(): number;
  /** Reports not yet accepted by a leader. */
  undelivered(): number;
  /**
   * Stops taking work (Assigns are refused as DRAINING, heartbeats tell the leader to place
   * nothing more here) and waits up to `graceMs` for the encodes running to finish. Returns how
   * many are still running: `stop()` then hands them back.
   */
  drain(graceMs: number): Promise<number>;
  telemetry: TelemetrySink;
  /** Federated learning on this node, when `learn` was given. */
  learning?: Learning;
  /** Where its Prometheus metrics are served (`host:port`), when `metrics` was given. */
  metricsAddress?: string;
  stop(): Promise<void>;
}

/** Tasks whose last attempt an agent remembers (a few hundred KB at most). */
const RAN_KEPT = 10_000;

export async function startAgent(o: AgentOptions): Promise<AgentHandle> {
  const nodeId = o.nodeId ?? os.hostname();
  // Structured lines (shared/log.ts): JSON off a terminal, levels, --log-level.
  const log = o.log ?? sentenceLog(memberLogger(`node/${nodeId}`));
  const hardware = await detectHardware(o.grant);
  const say: Log = (m, level) => log(`[agent ${nodeId}] ${m}`, level);
  // A burst node enrols first, with its launch's one-time certificate (node-agent/enrol.ts).
  const identity = o.identity ?? await nodeIdentity({
    pkiDir: pkiDirOf(o.endpoints), nodeId, consulHttp: o.endpoints.consul_http, bundle: o.enrolBundle ?? process.env.PRESCIENT_ENROL_BUNDLE, log: say,
  });
  // Issue 17: a root agent without ffmpeg's unprivileged user refuses to start (ConfigError) rather than run ffmpeg as root.
  say(describeFfmpegPrivileges());
  mkdirSync(o.outputDir, { recursive: true });
  mkdirSync(o.spoolDir, { recursive: true });
  // This host's capacity is counted once: what other agents here hold is not this one's (host-claims.ts).
  const claims = new HostClaims(o.hostClaimsFile, say);
  const grant = await claims.claim({
    node_id: nodeId, cores: o.grant?.cores ? hardware.core_ids : undefined, allowed_cores: allowedCores(),
    memory_gb: o.grant?.memoryGb, host_memory_gb: os.totalmem() / 1024 ** 3, gpus: hardware.gpus.map((g) => g.id),
  });
  Object.assign(hardware, { core_ids: grant.cores, memory_gb: grant.memory_gb, gpus: hardware.gpus.filter((g) => grant.gpus.includes(g.id)) });
  const plan = await detectEnforcement({ node_id: nodeId, gpu_count: hardware.gpus.length, output_dir: o.outputDir, ...o.enforcement, log: say });
  const enforcement = describeEnforcement(plan);
  const pool = createEncodeRunner({ maxThreads: Math.max(1, hardware.core_ids.length), warm: true });
  // The recorder hands over the schema, cores, GPUs and memory; the node's plan and the allocation's bandwidth join them here.
  const runner: EncodeRunner = {
    run: async (job, opts) => {
      const r = await pool.run({ ...job, enforcement: plan, bandwidth_mbps: running.get(job.task_id)?.allocation.bandwidth_mbps }, opts);
      for (const s of r.enforcement.shortfalls) say(`${job.task_id}: ${s}`, 'warn');
      return r;
    },
    close: () => pool.close(),
  };
  // Samples are spooled at once and sent once a second in one request for all of this node's
  // encodes: QuestDB took 15–20 % of a core ingesting them one request each (issue 15).
  const telemetry = new QuestDbTelemetrySink(o.endpoints.questdb_http, o.spoolDir, say, { lingerMs: AGENT_LINGER_MS });
  void telemetry.prepare();
  const metrics = o.metrics && new AgentMetrics(nodeId, {
    capacity: { cores: hardware.core_ids.length, memory_gb: hardware.memory_gb },
    running: () => [...running.entries()].map(([task_id, j]) => ({ task_id, allocation: j.allocation })),
    undelivered: () => outbox.length, telemetryPending: () => telemetry.pending(), leaderConnected: () => !!leader, draining: () => draining,
  }, dependencyChecks({ nc: () => nc, consulHttp: o.endpoints.consul_http, questdbHttp: o.endpoints.questdb_http }));
  const recorder = new RunRecorder({ node_id: nodeId, hardware, runner, telemetry: metrics ? metrics.watch(telemetry) : telemetry, output_dir: o.outputDir, input_roots: o.validation.allowedInputRoots, ...(o.validation.allowedOutputRoots && { output_roots: o.validation.allowedOutputRoots }), sample_interval_ms: o.sampleIntervalMs, log: say });
  const lookup = new ConsulLeaderLookup(o.endpoints.consul_http, (why) => say(why, 'warn'));
  // Certificates revoked anywhere in the cluster (Consul carries the list) are refused here too.
  const stopRevoked = followRevoked(o.endpoints.consul_http, say);
  // Progress is a nicety: without NATS the agent still encodes and reports over gRPC.
  const nc: NatsConnection | undefined = await connectMember(o.endpoints.nats_url, identity, `agent-${nodeId}`)
    .catch((e) => { say(`no NATS connection, progress will not be published: ${(e as Error).message}`, 'warn'); return undefined; });
  const progressCodec = JSONCodec<TaskProgress>();
  // Each encode's ffmpeg log, for `prescient logs` (node-agent/logs.ts).
  const logs = new LogShipper(nc, nodeId);
  const learning: Learning | undefined = o.learn && nc ? await startLearning(nc, { ...o.learn, nodeId, questdbHttp: o.endpoints.questdb_http, log: say }) : undefined;
  // The model's error signal (node-agent/feedback.ts): predicted against actual, and overruns as they happen.
  const feedback = new FeedbackPublisher(nc, say);
  const running = new Map<string, Running>();
  /** Every execute() in flight: its encode, or the quality pass after its release. */
  const executing = new Set<Promise<void>>();
  // Reports wait here until a leader takes them, on disk: an agent killed before then tells the next leader when it starts again.
  const outbox = new ReportOutbox(path.join(o.spoolDir, 'reports.json'), nodeId, say);
  const carried = outbox.load();
  if (carried) say(`${carried} report(s) a previous run of this agent had not delivered will be sent to the leader`);
  let highestTerm = 0;
  /**
   * The last attempt of each task that ran here (the newest RAN_KEPT tasks): an Assign repeating
   * one is refused, so it cannot overwrite the output that attempt left.
   */
  const ran = new Map<string, number>();
  /** Inputs probed for the leader, by path, size and modification time. */
  const probes = new ProbeCache();
  let leader: CoordinatorClient | undefined;
  let heartbeatMs = 2000;
  let stopped = false;
  let draining = false;

  const report = (r: Omit<TaskStatusReport, 'node_id'>) => {
    metrics?.reported(r.state, !!r.amend);
    outbox.push({ ...r, node_id: nodeId });
    void deliver();
  };

  async function execute(taskId: string, job: Running): Promise<void> {
    report(blankReport(taskId, 'running', job.allocation.term));
    const eff = effectiveOutput(job.schema);
    const total_frames = eff.fps && eff.duration_s ? Math.round(eff.fps * eff.duration_s) : undefined;
    const gpuName = hardware.gpus.find((g) => g.id === job.allocation.gpu_ids[0])?.name;
    const fb: ReportBasis = { job_id: taskId, attempt: job.attempt, node: nodeId, model_version: job.modelVersion, schema: job.schema, hw_class: hardwareClass(hardware.cpu_model, gpuName), allocation: job.allocation };
    const watch = new OverrunWatch(job.allocation, job.startedAt, (t, observed, held, after) => feedback.publish(overrunReport(fb, t, observed, held, after, job.predicted?.[t])));
    // A success is reported as soon as the encode is done, so the leader releases the
    // reservation while the quality pass runs on idle cycles; its figures follow as an amendment.
    let released = false;
    const succeeded = (result: MeasuredEncode, quality: string, quality_method = ''): Omit<TaskStatusReport, 'node_id'> => ({
      ...blankReport(taskId, 'succeeded', job.allocation.term), actual: result.actual, output_bytes: result.output_bytes, output_path: result.output_path, ...(result.media && { output_json: JSON.stringify(result.media) }),
      psnr_db: result.psnr_db ?? NaN, ssim: result.ssim ?? NaN, pinned: result.pinned, frames: result.frames, quality, quality_method,
    });
    let { result, error, failure, complexity, quality } = await recorder.record({
      task_id: taskId, schema: job.schema, core_ids: job.allocation.core_ids, gpu_ids: job.allocation.gpu_ids,
      memory_gb: job.allocation.memory_gb, attempt: job.attempt, predicted: job.predicted, model_version: job.modelVersion,
    }, {
      signal: job.abort.signal,
      onSample: (s) => watch.sample(s),
      onLog: (pass, line) => logs.line(job.owner, taskId, job.attempt, pass, line),
      onProgress: throttle(1000, (p) => nc?.publish(jobProgressSubject(job.owner, taskId), progressCodec.encode({
        job_id: taskId, node_id: nodeId, pass: p.pass, passes: job.schema.output.passes, frame: p.frame, fps: p.fps, speed: p.speed, out_bytes: p.out_bytes, total_frames,
      }))),
      // Live channels end only on request (below); a batch encode's success releases its cores now.
      onEncoded: job.schema.kind === 'actor' ? undefined : (r, method) => {
        released = true;
        running.delete(taskId);
        report(succeeded(r, method ? 'pending' : '', method));
        if (job.predicted) { const c = completionReport(fb, job.predicted, r.actual); if (c) feedback.publish(c); }
        say(`${taskId} encoded in ${r.actual.duration_s.toFixed(2)} s; reservation released, quality being measured`);
      },
    });
    running.delete(taskId);
    logs.flush();
    if (result && learning && job.schema.kind !== 'actor') {
      learning.learner.observe(runRow({
        task_id: taskId, attempt: job.attempt, schema: job.schema, cores: job.allocation.core_ids.length, gpus: job.allocation.gpu_ids.length,
        cpu_model: hardware.cpu_model, gpu_model: hardware.gpus.find((g) => g.id === job.allocation.gpu_ids[0])?.name, actual: result.actual, complexity, ts: job.startedAt,
      }));
    }
    if (released) {
      // Its success was reported at the release; what is left to say is the quality, if it was asked for.
      if (result && quality) {
        report({ ...succeeded(result, quality), amend: true });
        say(`${taskId} quality ${quality === 'measured' ? `PSNR ${result.psnr_db?.toFixed(2) ?? '?'} dB, SSIM ${result.ssim?.toFixed(4) ?? '?'}` : 'not measured'}`, 'debug');
      }
      return;
    }
    if (result && job.predicted) { const r = completionReport(fb, job.predicted, result.actual); if (r) feedback.publish(r); }
    // Cut short because this agent is stopping (a live channel included): not a failure of the
    // job. Nothing is reported; the deregistration (or, after a crash, the lease) has the leader
    // run it elsewhere.
    if (stopped && !job.endRequested && (!result || job.schema.kind === 'actor')) {
      say(`${taskId} handed back: the agent stopped before it finished`, 'warn');
      return;
    }
    if (!result && failure === 'MEMORY_EXCEEDED') {
      feedback.publish(overrunReport(fb, 'memory_gb', Math.max(watch.peakMemoryGb, job.allocation.memory_gb), job.allocation.memory_gb, (Date.now() - job.startedAt) / 1000, job.predicted?.memory_gb, 'stopped by its memory limit'));
    }
    // A live channel succeeds only by being stopped on request; one whose ffmpeg exited on its
    // own is reported failed, and the leader restarts it.
    const liveLost = job.schema.kind === 'actor' && result && !job.endRequested ? 'live channel ended without a stop request' : undefined;
    if (liveLost) { result = undefined; error = liveLost; failure = 'LIVE_ENDED'; }
    report(result ? succeeded(result, '') : { ...blankReport(taskId, 'failed', job.allocation.term), reason: error ?? 'unknown error', failure: failure ?? 'AGENT_ERROR' });
    say(`${taskId} ${result ? `succeeded in ${result.actual.duration_s.toFixed(2)} s` : `failed: ${error}`}`, result || failure === 'CANCELLED' ? 'info' : 'error');
  }

  /** Takes one assignment, or says why not (an AssignBatch's entries each go through this, in order). */
  function accept(a: Assignment): AssignReply {
    const alloc = fromAllocationMsg(a.allocation);
    const refuse = (refusal: FailureKind, reason: string): AssignReply => { say(`refused ${a.task_id}: ${reason}`, 'warn'); return { accepted: false, reason, refusal }; };
    if (draining) return refuse('DRAINING', 'this agent is stopping and takes no new work');
    if (alloc.term < highestTerm) return refuse('STALE_TERM', `stale leader term ${alloc.term}: this agent has seen term ${highestTerm}`);
    highestTerm = alloc.term;
    if (running.has(a.task_id)) return { accepted: true, reason: 'already running' };
    const before = ran.get(a.task_id);
    if (before !== undefined && Number(a.attempt) <= before) return refuse('ALREADY_RAN', `attempt ${a.attempt} of ${a.task_id} already ran here (its last was ${before}); its output is kept`);
    if (alloc.node_id !== nodeId) return refuse('WRONG_NODE', `allocation is for node ${alloc.node_id}, this is ${nodeId}`);
    const foreign = alloc.core_ids.filter((c) => !hardware.core_ids.includes(c));
    if (foreign.length) return refuse('WRONG_NODE', `cores ${foreign.join(',')} are not granted to this node`);
    const busy = alloc.core_ids.filter((c) => [...running.values()].some((r) => r.allocation.core_ids.includes(c)));
    if (busy.length) return refuse('CORES_BUSY', `cores ${busy.join(',')} are already running another task here`);
    let schema: EncodingSchema;
    try {
      schema = validateEncodingSchema(JSON.parse(a.schema_json), o.validation);
    } catch (e) {
      return refuse('INVALID_SCHEMA', e instanceof SchemaValidationError ? e.message : `schema is not JSON: ${(e as Error).message}`);
    }
    const job: Running = { allocation: alloc, owner: a.owner || NO_OWNER, schema, predicted: a.predicted, modelVersion: a.model_version || 'unknown', attempt: Number(a.attempt), startedAt: Date.now(), abort: new AbortController() };
    running.set(a.task_id, job);
    ran.delete(a.task_id);
    ran.set(a.task_id, job.attempt);
    if (ran.size > RAN_KEPT) ran.delete(ran.keys().next().value!);
    say(`accepted ${a.task_id} (term ${alloc.term}) on cores [${alloc.core_ids.join(',')}], ${alloc.memory_gb} GB`);
    const run = execute(a.task_id, job).finally(() => executing.delete(run));
    executing.add(run);
    return { accepted: true, reason: '' };
  }

  /**
   * Whether an order under `term` may be obeyed: one above the highest term seen must be the
   * term of the leader Consul names, read now (an Assign stamped 2^53−1 by anyone who could
   * reach this port once made the agent refuse every real leader as stale until restarted).
   */
  async function leaderTerm(term: number): Promise<string | undefined> {
    if (!(Number.isSafeInteger(term) && term >= 0)) return `term ${term} is not a term`;
    if (term <= highestTerm) return undefined;
    const info = await lookup.currentLeader().catch(() => null);
    if (info?.term === term) return undefined;
    return `term ${term} is not the leader's in Consul (${info ? `${info.id}, term ${info.term}` : 'none'})`;
  }

  /** Orders come from coordinators only: a caller whose certificate names anything else is refused, and logged. */
  const fromCoordinator = <Req, Res>(fn: (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => void) =>
    (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => {
      const caller = callerOf(call, identity);
      if (caller?.role === 'coordinator') return fn(call, cb);
      say(`refused ${call.getPath()} from ${caller ? `${caller.role} ${caller.name}` : 'a caller with no member certificate'}: only a coordinator may`, 'warn');
      cb(permissionDenied(`only a coordinator may call ${call.getPath()}`) as grpc.ServiceError);
    };
  const handlers: AgentHandlers = {
    AssignBatch: fromCoordinator((call, cb) => {
      const as = call.request.assignments ?? [];
      const top = Math.max(0, ...as.map((a) => Number(a.allocation?.term ?? 0)));
      void leaderTerm(top).then((wrong) => cb(null, {
        replies: as.map((a) => (!wrong || Number(a.allocation?.term ?? 0) <= highestTerm ? accept(a) : (say(`refused ${a.task_id}: ${wrong}`, 'warn'), { accepted: false, reason: wrong, refusal: 'STALE_TERM' as const }))),
      }));
    }),
    Probe: fromCoordinator(async (call, cb) => {
      const { path: raw, term } = call.request;
      if (Number(term) < highestTerm) return cb(null, { ok: false, reason: `stale leader term ${term}: this agent has seen term ${highestTerm}`, probe_json: '' });
      const wrong = await leaderTerm(Number(term));
      if (wrong) return cb(null, { ok: false, reason: wrong, probe_json: '' });
      let file: string;
      try {
        file = validateInputPath(raw, o.validation);
      } catch (e) {
        return cb(null, { ok: false, reason: (e as Error).message, probe_json: '' });
      }
      probeInput({ kind: 'file', path: file }, { by: 'node', cache: probes, core_ids: hardware.core_ids, roots: o.validation.allowedInputRoots }).then(
        (p) => cb(null, p ? { ok: true, reason: '', probe_json: JSON.stringify(p) } : { ok: false, reason: `${file} cannot be read or is not video on node ${nodeId}`, probe_json: '' }),
        (e: Error) => cb(null, { ok: false, reason: e.message, probe_json: '' }),
      );
    }),
    Cancel: fromCoordinator(async (call, cb) => {
      const r = running.get(call.request.task_id);
      if (Number(call.request.term) < highestTerm) return cb(null, { ok: false, reason: `stale leader term ${call.request.term}`, refusal: 'STALE_TERM' });
      const wrong = await leaderTerm(Number(call.request.term));
      if (wrong) { say(`refused to cancel ${call.request.task_id}: ${wrong}`, 'warn'); return cb(null, { ok: false, reason: wrong, refusal: 'STALE_TERM' }); }
      if (r) r.endRequested = true;
      r?.abort.abort(); // a live channel takes this as its stop and closes its playlist
      cb(null, r ? { ok: true, reason: '' } : { ok: false, reason: 'not running here', refusal: 'NOT_RUNNING' });
    }),
  };
  const host = o.grpcHost ?? '127.0.0.1';
  const { server, port } = await serve(agentService(), handlers, host, o.grpcPort ?? 0, identity).catch(async (e) => { await claims.release(); throw e; });
  const address = `${host}:${port}`;
  const metricsServer = metrics && await serveMetrics(metrics.registry, o.metrics!.host, o.metrics!.port).catch(async (e: Error) => {
    await new Promise<void>((r) => server.tryShutdown(() => r()));
    stopRevoked();
    learning?.stop();
    await telemetry.close();
    await disconnectMember(nc);
    await claims.release();
    throw new Error(`could not serve metrics on ${o.metrics!.host}:${o.metrics!.port}: ${e.message}`);
  });
  if (metricsServer) say(`serving Prometheus metrics on http://${metricsServer.address}/metrics`);

  const runningList = (): RunningTaskMsg[] => [...running.entries()].map(([task_id, r]) => ({ task_id, allocation: toAllocationMsg(r.allocation) }));

  async function connect(): Promise<void> {
    const info = await lookup.currentLeader();
    if (!info) throw new Error('no leader elected yet');
    leader?.close();
    leader = undefined;
    // The client becomes `leader` once registered: a leader that cannot be reached is no contact lost.
    const client = new CoordinatorClient(info.address, identity);
    const reply = await client.register({
      capacity: { node_id: nodeId, address, core_ids: hardware.core_ids, memory_gb: hardware.memory_gb, bandwidth_mbps: hardware.bandwidth_mbps, gpus: hardware.gpus.map(gpuCapacity), cpu_model: hardware.cpu_model, enforcement },
      running: runningList(),
    }).catch((e) => { client.close(); throw e; });
    leader = client;
    failures = 0;
    highestTerm = Math.max(highestTerm, Number(reply.term));
    heartbeatMs = reply.heartbeat_interval_ms || heartbeatMs;
    say(`registered with leader ${reply.leader_id} (term ${reply.term}) at ${info.address}`);
  }

  let delivering = false;
  async function deliver(): Promise<void> {
    if (delivering || !leader) return;
    delivering = true;
    try {
      for (let r = outbox.first; r && leader; r = outbox.first) {
        const ack = await leader.reportStatus(r);
        if (!ack.ok) say(`leader did not take report for ${r.task_id}: ${ack.reason}`, 'warn');
        outbox.shift();
      }
    } catch (e) {
      // Leader unreachable or deposed: keep the reports for the next leader.
      say(`report for ${outbox.first?.task_id} not delivered yet: ${(e as grpc.ServiceError).details ?? (e as Error).message}`, 'warn');
    } finally {
      delivering = false;
    }
  }

  // Without a leader the agent retries with capped exponential backoff and jitter, and says so
  // at the 1st, 2nd, 4th, 8th … try (it once logged "lost contact" every 500 ms); a change of
  // Consul's leader key wakes it at once, so a new leader is found within moments.
  let failures = 0, leaderKeyChanged = false, wake: (() => void) | undefined;
  const nap = (ms: number) => new Promise<void>((r) => { const t = setTimeout(r, ms); wake = () => { clearTimeout(t); r(); }; });
  // A new leader starts the backoff afresh: it answers "not the leader" until its term has started.
  const stopWatching = watchLeaderKey(o.endpoints.consul_http, () => { leaderKeyChanged = true; failures = 0; wake?.(); });
  async function loop(): Promise<void> {
    while (!stopped) {
      try {
        if (!leader || leaderKeyChanged) { leaderKeyChanged = false; await connect(); }
        else {
          const hb = await leader.heartbeat({ node_id: nodeId, running: runningList(), draining });
          highestTerm = Math.max(highestTerm, Number(hb.term));
          if (hb.reregister) await connect();
        }
        await deliver();
      } catch (e) {
        const why = (e as grpc.ServiceError).details ?? (e as Error).message;
        failures++;
        if (leader) say(`lost contact with the leader: ${why}`, 'warn');
        else if ((failures & (failures - 1)) === 0) say(`no leader to register with (try ${failures}): ${why}; retrying with backoff up to ${RETRY_MAX_MS / 1000} s`, 'warn');
        leader?.close();
        leader = undefined;
      }
      // A change of the leader key seen while trying is not slept through.
      if (!leaderKeyChanged) await nap(leader ? heartbeatMs : retryDelay(failures));
    }
  }
  void loop();
  say(`serving gRPC on ${address}; cores [${hardware.core_ids.join(',')}], ${hardware.memory_gb.toFixed(1)} GB, ${hardware.gpus.length} GPU(s)`);
  say(`enforcement: ${enforcement.map((e) => `${e.resource} ${e.mode} (${e.detail})`).join('; ')}`);

  return {
    nodeId, address, hardware, enforcement, telemetry, learning, metricsAddress: metricsServer?.address,
    running: () => [...running.keys()],
    term: () => highestTerm,
    undelivered: () => outbox.length,
    async drain(graceMs: number) {
      draining = true;
      say(`draining: taking no new work, waiting up to ${(graceMs / 1000).toFixed(0)} s for ${running.size} encode(s) to finish`);
      // Told at once, not at the next heartbeat: the leader stops placing here now.
      await leader?.heartbeat({ node_id: nodeId, running: runningList(), draining }).catch(() => undefined);
      const until = Date.now() + graceMs;
      while (running.size && Date.now() < until && !stopped) await new Promise((r) => setTimeout(r, 100));
      await deliver();
      if (running.size) say(`drained for ${(graceMs / 1000).toFixed(0)} s; ${running.size} encode(s) still running are handed back`, 'warn');
      return running.size;
    },
    async stop() {
      stopped = true;
      await metricsServer?.close();
      stopWatching();
      wake?.();
      learning?.stop();
      for (const r of running.values()) r.abort.abort();
      await deliver();
      await runner.close();
      // Quality passes in flight stop; their amendments (quality unavailable) are still worth
      // delivering. An encode cut short by the stop reports nothing (execute): the leader re-runs
      // it. What is still undelivered waits on disk for this agent's next start.
      recorder.stop();
      await Promise.allSettled([...executing]);
      await deliver();
      for (const dir of await releaseEnforcement(plan)) say(`cgroup ${dir} still in use, not removed`, 'warn');
      await telemetry.close();
      await feedback.close();
      logs.flush();
      // The leader takes this node out at once, and what it still held (cut short above) runs
      // elsewhere. Between heartbeats that failed (a leader change, a loaded host) this agent holds
      // no client: the leader Consul names now is asked instead.
      let to = leader;
      if (!to) {
        const info = await lookup.currentLeader().catch(() => null);
        if (info) to = new CoordinatorClient(info.address, identity);
      }
      if (to) {
        await to.deregister({ node_id: nodeId, reason: draining ? 'drained and stopped' : 'stopped' })
          .then(() => say('deregistered from the leader'), (e: Error) => say(`could not deregister (${e.message}); the leader takes the node out after a lease`, 'warn'));
        if (to !== leader) to.close();
      } else say('no leader to deregister from; a leader takes the node out after a lease', 'warn');
      leader?.close();
      await disconnectMember(nc);
      await new Promise<void>((r) => server.tryShutdown(() => r()));
      stopRevoked();
      await claims.release();
    },
  };
}

/** Calls `fn` at most once per `ms`, always letting the first call through. */
function throttle<T>(ms: number, fn: (v: T) => void): (v: T) => void {
  let last = 0;
  return (v) => {
    const now = Date.now();
    if (now - last >= ms) { last = now; fn(v); }
  };
}

function blankReport(task_id: string, state: TaskStatusReport['state'], term: number): Omit<TaskStatusReport, 'node_id'> {
  return { task_id, state, reason: '', actual: null, output_bytes: 0, output_path: '', psnr_db: NaN, ssim: NaN, pinned: false, frames: 0, term, quality: '', amend: false, quality_method: '' };
}

/** Longest wait between tries to reach a leader. */
const RETRY_MAX_MS = 5000;

/** The wait before try n + 1 without a leader: 250 ms doubling to RETRY_MAX_MS, each ±25 % at random so that agents spread out. */
export function retryDelay(failures: number): number {
  const base = Math.min(RETRY_MAX_MS, 250 * 2 ** Math.min(10, Math.max(0, failures - 1)));
  return Math.round(base * (0.75 + Math.random() * 0.5));
}
