/**
 * A coordinator process: serves the Coordinator gRPC API, campaigns for leadership through
 * Consul, and while it leads runs a Leader for its term. Standbys answer agents with
 * "not the leader", naming the one that is.
 */
import os from 'node:os';
import path from 'node:path';
import type { NatsConnection } from 'nats';
import {
  callerOf, claimJoin, coordinatorService, disconnectMember, JOIN_NAME, MEMBER_NAME, unclaimJoin, followRevoked, internalError, publishRevoked, loadIdentity, readSecret, retryUnavailable, signRequest, truncate, notLeaderError, permissionDenied, pkiDirOf, redactText, serve, stateDir, type grpc,
  type CoordinatorHandlers, type Identity, type Member, type StackEndpoints, type ValidationContext,
} from '../shared/index.js';
import { LiveModel, ModelRegistry, type ResourcePredictor } from '../models/index.js';
import { ConsulLeaderElection, type LeaderElection } from './election/index.js';
import { JetStreamTaskStore, JetStreamTermRecord, connectBus, ensureStreams } from './bus/index.js';
import { Leader } from './leader/index.js';
import type { TimeLimit } from './core/index.js';
import { RetrainScheduler } from './retrain/index.js';
import type { ReservationPolicy } from './sizing/index.js';
import { JetStreamLedgerStore } from './ledger/index.js';
import type { PlacementPolicy } from './placement/index.js';
import { startFederation, type Federation, type FederationOptions } from './federation/index.js';
import { BurstController, verifyProvider, type BurstOptions } from './burst/index.js';
import { CoordinatorMetrics } from './metrics/index.js';
import { memberLogger, sentenceLog, type Log } from '../shared/log.js';
import { dependencyChecks, serveMetrics, type MetricsServer } from '../shared/metrics.js';
import { CorrectedPredictor, FeedbackService, JetStreamFeedbackStore, ensureFeedbackStream, type FeedbackOverrides } from './feedback/index.js';

export interface CoordinatorOptions {
  id?: string;
  endpoints: StackEndpoints;
  /** Its certificate (default: `coordinator/<id>` in the endpoints' pki_dir, issued there when this host holds the CA key). */
  identity?: Identity;
  validation: ValidationContext;
  grpcHost?: string;
  grpcPort?: number;
  /** Model registry directory: its current version predicts, and promotions swap in live. */
  modelDir?: string;
  /** Coverage of the upper bounds reservations are made at (default: the model's own, 0.95). */
  coverage?: number;
  /** Scheduled retraining from QuestDB by whichever coordinator leads (coordinator/retrain). */
  retrain?: { schedule: string; windowMs: number; minRows?: number };
  /** How much a task reserves (default: its predicted upper bound; coordinator/sizing). */
  reservation?: ReservationPolicy;
  /** Which node gets it (default best-fit; coordinator/placement). */
  policy?: PlacementPolicy;
  /** Federated learning: the leader merges agents' weight deltas into new global versions and publishes them; standbys follow (coordinator/federation). */
  federation?: FederationOptions;
  /** A fixed predictor instead of the registry's (tests). */
  predictor?: ResourcePredictor;
  /** The feedback loop's windows, thresholds, drift test, correction and margins (coordinator/feedback). */
  feedback?: FeedbackOverrides;
  /** Model alerts are also POSTed here as JSON (`--alert-webhook`). */
  alertWebhook?: string;
  /** Cloud burst: the leader launches and gives back nodes through this provider (coordinator/burst). */
  burst?: BurstOptions;
  leaseMs?: number;
  /** When an encode is stopped as hung (default coordinator/core TIME_LIMIT: 3× its predicted upper duration, at least 60 s). */
  timeLimit?: TimeLimit;
  /** Attempts before a task that keeps losing its node, or hanging, is failed (default 5). */
  maxAttempts?: number;
  heartbeatMs?: number;
  sessionTtlSeconds?: number;
  /** While leading, append the events fed to the leader's core to this file, term by term (`prescient replay`). */
  eventLog?: string;
  /** Serve Prometheus metrics on this address (`--metrics HOST:PORT`; port 0 for any free one). */
  metrics?: { host: string; port: number };
  log?: Log;
}

export interface CoordinatorHandle {
  id: string;
  address: string;
  isLeader(): boolean;
  leader(): Leader | undefined;
  /** The retraining schedule, when one was configured. */
  retrainer(): RetrainScheduler | undefined;
  /** Federated learning, when `federation` was given. */
  federation(): Federation | undefined;
  /** The feedback loop (active while this coordinator leads). */
  feedback(): FeedbackService;
  /** The burst controller, while this coordinator leads with `burst` configured. */
  burst(): BurstController | undefined;
  /** Where its Prometheus metrics are served (`host:port`), when `metrics` was given. */
  metricsAddress?: string;
  /** Its NATS connection (as this coordinator): what else it serves (the dashboard) reads the cluster through it. */
  bus: NatsConnection;
  stop(): Promise<void>;
}

export async function startCoordinator(o: CoordinatorOptions): Promise<CoordinatorHandle> {
  const id = o.id ?? `${os.hostname()}-${process.pid}`;
  // Structured lines (shared/log.ts): JSON off a terminal, levels, --log-level.
  const log = o.log ?? sentenceLog(memberLogger(`coordinator/${id}`));
  // One certificate per host, not per process: the default id carries the pid.
  const identity = o.identity ?? loadIdentity(pkiDirOf(o.endpoints), { role: 'coordinator', name: o.id ?? os.hostname() });
  // No credentials or a region that does not exist refuse the start (coordinator/burst/config.ts).
  if (o.burst) await verifyProvider(o.burst.provider, o.burst.config.catalogue, log);
  const registry = new ModelRegistry(o.modelDir ?? path.join(stateDir(), 'models'));
  const live = o.predictor ? undefined : new LiveModel(registry, { coverage: o.coverage, log }).watch();
  const predictor = o.predictor ?? live!;
  // The leader predicts through the feedback loop's corrections while it runs (coordinator/feedback).
  const served = new CorrectedPredictor(predictor, () => (feedback.active ? feedback : undefined));
  const nc: NatsConnection = await connectBus(o.endpoints.nats_url, identity, `coordinator-${id}`);
  const js = nc.jetstream();
  // Each step is retried while JetStream is briefly unreachable (a NATS reload: retryUnavailable).
  await retryUnavailable(() => ensureStreams(nc));
  const store = await retryUnavailable(() => JetStreamTaskStore.open(js, (why) => log(why, 'warn')));
  const termRecord = await retryUnavailable(() => JetStreamTermRecord.open(js));
  const ledgerStore = await retryUnavailable(() => JetStreamLedgerStore.open(js, undefined, { highestIssued: () => termRecord.highest(), log }));
  await retryUnavailable(() => ensureFeedbackStream(nc));
  const feedback = new FeedbackService({ js, store: await retryUnavailable(() => JetStreamFeedbackStore.open(js)), tasks: store, settings: o.feedback, webhook: o.alertWebhook, log });
  let leader: Leader | undefined;
  let leaderAddress: string | undefined;
  let burst: BurstController | undefined;
  const metrics = o.metrics && new CoordinatorMetrics({
    id, leader: () => leader && { term: leader.term, activeTasks: () => leader!.activeTasks(), nodes: () => leader!.nodes() },
    errorGroups: () => (feedback.active ? feedback.figures().groups : []),
    checks: dependencyChecks({ nc: () => nc, consulHttp: o.endpoints.consul_http, questdbHttp: o.endpoints.questdb_http }),
  });
  let metricsServer: MetricsServer | undefined;
  if (metrics) {
    try {
      metricsServer = await serveMetrics(metrics.registry, o.metrics!.host, o.metrics!.port);
    } catch (e) {
      live?.stop();
      await disconnectMember(nc);
      throw new Error(`could not serve metrics on ${o.metrics!.host}:${o.metrics!.port}: ${(e as Error).message}`);
    }
    log(`coordinator ${id} serving Prometheus metrics on http://${metricsServer.address}/metrics`);
  }

  /**
   * Every call comes from a node agent, about that node only: the node id it names must be the
   * one its certificate names (a forged report or a fake agent is refused before the leader sees it).
   */
  const fromNode = <Req, Res>(nodeOf: (req: Req) => string | undefined, fn: (l: Leader, req: Req) => Promise<Res>) =>
    (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => {
      const caller: Member | undefined = callerOf(call, identity), claimed = nodeOf(call.request);
      if (caller?.role !== 'node' || caller.name !== claimed) {
        log(`refused ${call.getPath()} from ${caller ? `${caller.role} ${caller.name}` : 'a caller with no member certificate'} about node ${JSON.stringify(claimed)}`, 'warn');
        return cb(permissionDenied(`${caller ? `${caller.role} ${caller.name}` : 'this certificate'} may not speak for node ${JSON.stringify(claimed)}`) as grpc.ServiceError);
      }
      if (!leader) return cb(notLeaderError(leaderAddress) as grpc.ServiceError);
      fn(leader, call.request).then((r) => cb(null, r), (e: Error) => cb(internalError(e.message) as grpc.ServiceError));
    };
  const pki = pkiDirOf(o.endpoints);
  const consulToken = readSecret(pki, 'consul-coordinator');
  const handlers: CoordinatorHandlers = {
    Register: fromNode((r) => r.capacity?.node_id, (l, r) => l.register(r)),
    Heartbeat: fromNode((r) => r.node_id, (l, r) => l.heartbeat(r)),
    ReportStatus: fromNode((r) => r.node_id, (l, r) => l.reportStatus(r)),
    Deregister: fromNode((r) => r.node_id, (l, r) => l.deregister(r)),
    // A new node's first call: an enrolment certificate buys one node certificate, signed here.
    // A burst launch's may be used by the instances that launch started (coordinator/burst
    // mayEnrol); a join token's by as many hosts as the token was made for (shared/pki/join.ts).
    Enrol: (call, cb) => {
      const caller = callerOf(call, identity), nodeId = String(call.request.node_id ?? '');
      if (caller?.role !== 'enrol') {
        log(`refused an enrolment from ${caller ? `${caller.role} ${caller.name}` : 'a caller with no member certificate'}`, 'warn');
        return cb(permissionDenied('only an enrolment certificate (a burst launch\'s or a join token\'s) may enrol') as grpc.ServiceError);
      }
      if (!leader) return cb(notLeaderError(leaderAddress) as grpc.ServiceError);
      if (!MEMBER_NAME.test(nodeId)) return cb(permissionDenied(`node id ${truncate(JSON.stringify(nodeId), 80)} must match ${MEMBER_NAME}`) as grpc.ServiceError);
      const join = JOIN_NAME.test(caller.name);
      // A join token enrols new hosts: a certificate for a node already in the cluster would let its holder speak for that node.
      if (join && leader.ledger.hasNode(nodeId)) return cb(permissionDenied(`node ${nodeId} is in the cluster already: a join token enrols new nodes only (choose another --node-id)`) as grpc.ServiceError);
      const b = burst;
      if (!join && !b) return cb(permissionDenied('this leader runs no burst controller: there is nothing to enrol into') as grpc.ServiceError);
      const claim = join ? claimJoin(o.endpoints.consul_http, consulToken, caller.name, nodeId, Date.now()) : b!.mayEnrol(caller.name, nodeId);
      const giveBack = () => (join ? unclaimJoin(o.endpoints.consul_http, consulToken, caller.name, nodeId).catch((e: Error) => log(`could not give back ${caller.name}'s place for ${nodeId}: ${e.message}`, 'warn')) : b!.undoEnrol(caller.name, nodeId));
      claim.then((why) => {
        if (why) {
          log(`refused to enrol ${truncate(nodeId, 80)} (${caller.name}): ${why}`, 'warn');
          return cb(permissionDenied(why) as grpc.ServiceError);
        }
        let cert_pem: string;
        try {
          cert_pem = signRequest(pki, String(call.request.csr_pem ?? ''), { role: 'node', name: nodeId });
        } catch (e) {
          void giveBack(); // a request that could not be signed does not use the enrolment up
          return cb(internalError(`could not sign: ${(e as Error).message}`) as grpc.ServiceError);
        }
        log(`enrolled node ${nodeId} (${caller.name})`);
        cb(null, { cert_pem });
      }).catch((e: Error) => cb(internalError(e.message) as grpc.ServiceError));
    },
  };
  // The cluster's revoked list reaches every host through Consul; this host's own (certs revoke) is added to it.
  const stopRevoked = followRevoked(o.endpoints.consul_http, log);
  if (consulToken) void publishRevoked(o.endpoints.consul_http, consulToken, pki).catch((e: Error) => log(`could not add this host's revoked list to Consul: ${e.message}`, 'error'));
  const host = o.grpcHost ?? '127.0.0.1';
  const { server, port } = await serve(coordinatorService(), handlers, host, o.grpcPort ?? 0, identity);
  const address = `${host}:${port}`;

  const election: LeaderElection = new ConsulLeaderElection({
    consulHttp: o.endpoints.consul_http, consulToken, candidateId: id, advertise: address, ttlSeconds: o.sessionTtlSeconds ?? 10, log,
    termRecord,
  });
  let transition = Promise.resolve();
  await election.start({
    elected: (term) => {
      transition = transition.then(async () => {
        const l = new Leader({
          onDeposed: (reason) => void election.resign(`deposed: ${reason}`).catch((e) => log(`could not resign: ${e}`, 'error')),
          id, term, identity, js, nc, store, predictor: served, validation: o.validation, log, reservation: o.reservation, policy: o.policy, ledgerStore, eventLog: o.eventLog, coverage: o.coverage,
          leaseMs: o.leaseMs ?? 15_000, heartbeatMs: o.heartbeatMs ?? 2000, timeLimit: o.timeLimit, maxAttempts: o.maxAttempts,
          onRecord: metrics ? (t) => metrics.recorded(t) : undefined,
        });
        try {
          await retryUnavailable(() => feedback.start());
          await l.start(); // not retried: a half-started leader is stopped, and a new one elected
        } catch (e) {
          // Holding the lock without leading stalls the cluster: give it up, so this coordinator
          // (after sitting out) or a standby campaigns again under a new term.
          await l.stop().catch(() => undefined);
          await feedback.stop().catch(() => undefined);
          await election.resign(`could not start leading: ${(e as Error).message}`).catch((r) => log(`could not resign: ${r}`, 'error'));
          return;
        }
        leader = l;
        leaderAddress = address;
        if (o.burst) {
          burst = await (await BurstController.open({
            config: o.burst.config, provider: o.burst.provider, agentArgs: o.burst.agentArgs, js, endpoints: o.endpoints, leaderId: id, log, pkiDir: pki,
            leader: () => (leader === l ? l : undefined),
          })).start();
        }
      }).catch((e) => log(`could not start leading: ${e}`, 'error'));
    },
    demoted: () => {
      const l = leader, b = burst;
      leader = undefined;
      leaderAddress = undefined;
      burst = undefined;
      transition = transition.then(() => b?.stop()).then(() => l?.stop()).then(() => feedback.stop()).catch((e) => log(`error while stepping down: ${e}`, 'error'));
    },
  });
  log(`coordinator ${id} serving gRPC on ${address}, campaigning through Consul at ${o.endpoints.consul_http}`);
  const scheduler = o.retrain && new RetrainScheduler({
    ...o.retrain, questdbHttp: o.endpoints.questdb_http, registry, coverage: o.coverage, log,
    isLeader: () => !!leader, onResult: () => live?.refresh(),
  }).start();

  const federation = o.federation && await startFederation(nc, {
    ...o.federation, registry, questdbHttp: o.endpoints.questdb_http, isLeader: () => !!leader, onModel: () => live?.refresh(), log,
  });

  return {
    id, address,
    isLeader: () => !!leader,
    leader: () => leader,
    retrainer: () => scheduler || undefined,
    federation: () => federation || undefined,
    feedback: () => feedback,
    burst: () => burst,
    metricsAddress: metricsServer?.address,
    bus: nc,
    async stop() {
      await metricsServer?.close();
      scheduler?.stop();
      if (federation) federation.stop();
      live?.stop();
      await burst?.stop();
      await election.stop();
      await transition;
      await feedback.stop();
      await new Promise<void>((r) => server.tryShutdown(() => r()));
      stopRevoked();
      await disconnectMember(nc);
    },
  };
}
