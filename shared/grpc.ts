/**
 * Typed access to the coordinator <-> agent gRPC API defined in `proto/prescient.proto`.
 * The .proto is loaded at run time (no generated code); these interfaces mirror its messages
 * with the loader options below (field names as written, 64-bit integers as numbers).
 */
import type * as grpc from '@grpc/grpc-js';
import type * as protoLoaderTypes from '@grpc/proto-loader';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { NodeCapacity, ResourceAllocation, ResourceUsage } from './task.js';
import path from 'node:path';
import { memberOf, revokedFingerprints, type Identity, type Member } from './pki/index.js';

// gRPC and its .proto loader (~0.1 s of CPU) are required on first use, not on import: every
// process imports shared/, and only coordinators and agents speak gRPC (the CLI does not).
const require = createRequire(import.meta.url);
const grpcJs = (): typeof grpc => require('@grpc/grpc-js');
const protoLoader = (): typeof protoLoaderTypes => require('@grpc/proto-loader');

export const PROTO_PATH = fileURLToPath(new URL('./proto/prescient.proto', import.meta.url));

export interface AllocationMsg { node_id: string; core_ids: number[]; gpu_ids: number[]; memory_gb: number; bandwidth_mbps: number; lease_expires_at: number; term: number }
export interface RunningTaskMsg { task_id: string; allocation: AllocationMsg | null }
export interface RegisterRequest { capacity: NodeCapacity; running: RunningTaskMsg[] }
export interface RegisterReply { term: number; leader_id: string; heartbeat_interval_ms: number }
export interface HeartbeatRequest { node_id: string; running: RunningTaskMsg[]; draining?: boolean }
export interface DeregisterRequest { node_id: string; reason: string }
export interface HeartbeatReply { term: number; reregister: boolean }
export interface Assignment { task_id: string; schema_json: string; allocation: AllocationMsg; predicted: ResourceUsage; attempt: number; model_version: string; owner?: string }
export interface AssignReply { accepted: boolean; reason: string; refusal?: FailureKind }
export interface AssignBatchRequest { assignments: Assignment[] }
export interface AssignBatchReply { replies: AssignReply[] }
export interface CancelRequest { task_id: string; term: number }
export interface ProbeRequest { path: string; term: number }
export interface ProbeReply { ok: boolean; reason: string; probe_json: string }
export interface TaskStatusReport {
  task_id: string; node_id: string; state: 'running' | 'succeeded' | 'failed'; reason: string;
  actual: ResourceUsage | null; output_bytes: number; output_path: string; psnr_db: number; ssim: number;
  pinned: boolean; frames: number; term: number;
  /** '' | 'pending' | 'measured' | 'unavailable' (EncodeResult.quality); `amend`: this report only brings a success's quality figures. */
  quality?: string; amend?: boolean; quality_method?: string;
  /** With `failed`: why, as a kind (the reason is for people). */
  failure?: FailureKind;
  /** With `succeeded`: the output's OutputMedia as JSON (an HLS rendition's), '' otherwise. */
  output_json?: string;
}
export interface Ack { ok: boolean; reason: string; refusal?: FailureKind }
export interface EnrolRequest { node_id: string; csr_pem: string }
export interface EnrolReply { cert_pem: string }

/** The proto's FailureKind: why an encode failed or a request was refused. Programs act on it; they never match the prose reason. */
export const FAILURE_KINDS = [
  'FAILURE_KIND_UNSPECIFIED', 'MEMORY_EXCEEDED', 'ENCODE_FAILED', 'UNSUPPORTED', 'CANCELLED', 'LIVE_ENDED', 'AGENT_ERROR',
  'NOT_RUNNING', 'STALE_TERM', 'WRONG_NODE', 'CORES_BUSY', 'INVALID_SCHEMA', 'ALREADY_RAN', 'NOT_PERMITTED', 'DRAINING',
] as const;
export type FailureKind = (typeof FAILURE_KINDS)[number];
const KNOWN_KINDS: ReadonlySet<unknown> = new Set(FAILURE_KINDS);
/** A kind read off the wire: one of FAILURE_KINDS, else unspecified (a newer peer's kind, or a number the loader could not name). */
export const failureKind = (x: unknown): FailureKind => (KNOWN_KINDS.has(x) ? (x as FailureKind) : 'FAILURE_KIND_UNSPECIFIED');

type Unary<Req, Res> = (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => void;
export interface CoordinatorHandlers extends grpc.UntypedServiceImplementation {
  Register: Unary<RegisterRequest, RegisterReply>;
  Heartbeat: Unary<HeartbeatRequest, HeartbeatReply>;
  ReportStatus: Unary<TaskStatusReport, Ack>;
  Enrol: Unary<EnrolRequest, EnrolReply>;
  Deregister: Unary<DeregisterRequest, Ack>;
}
export interface AgentHandlers extends grpc.UntypedServiceImplementation {
  AssignBatch: Unary<AssignBatchRequest, AssignBatchReply>;
  Cancel: Unary<CancelRequest, Ack>;
  Probe: Unary<ProbeRequest, ProbeReply>;
}

interface LoadedApi {
  Coordinator: grpc.ServiceClientConstructor;
  Agent: grpc.ServiceClientConstructor;
}
let api: LoadedApi | undefined;
function load(): LoadedApi {
  if (!api) {
    const def = protoLoader().loadSync(PROTO_PATH, { keepCase: true, longs: Number, enums: String, defaults: true, arrays: true });
    const pkg = grpcJs().loadPackageDefinition(def) as unknown as { prescient: { v1: LoadedApi } };
    api = pkg.prescient.v1;
  }
  return api;
}

export const coordinatorService = () => load().Coordinator.service;
export const agentService = () => load().Agent.service;

/** Calls one unary method and resolves with its reply; rejects with the gRPC error. */
function unary<Req, Res>(client: grpc.Client, method: string, req: Req, deadlineMs: number): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, Function>)[method];
    fn.call(client, req, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, res: Res) => (err ? reject(err) : resolve(res)));
  });
}

/**
 * Mutual TLS for a client: it shows `self`'s certificate, and takes the server for who its
 * certificate names, checked by `expect` (a message when it is the wrong member). The CA is the
 * cluster's own, so the role and name in the subject are what identifies a peer; its host name
 * is not checked (agents are dialled at whatever address they registered).
 */
function mutualTls(self: Identity, expect: (peer: Member | undefined) => string | undefined): grpc.ChannelCredentials {
  return grpcJs().credentials.createSsl(self.ca, self.key, self.cert, {
    checkServerIdentity: (_host, cert) => {
      if (revokedFingerprints(path.dirname(self.ca_file)).has(cert.fingerprint256)) return new Error(`its certificate (${memberOf(cert.subject)?.name ?? '?'}) is revoked`);
      const why = expect(memberOf(cert.subject));
      return why ? new Error(why) : undefined;
    },
  });
}

/**
 * The name TLS asks for (SNI): peers are told apart by certificate, not host name, and an IP
 * address there is refused by RFC 6066 (Node warns on every connection).
 */
const CHANNEL_OPTIONS = { 'grpc.ssl_target_name_override': 'prescient.cluster' };

const describe = (m: Member | undefined) => (m ? `${m.role} ${m.name}` : 'no cluster member');

/**
 * The member whose certificate the caller of a server call presented (the server asked for one
 * and checked it against the cluster CA), or undefined when it names none or is revoked on this
 * host (`self`'s certificates folder).
 */
export function callerOf(call: { getAuthContext?: () => { sslPeerCertificate?: { subject?: object; fingerprint256?: string } } | null }, self: Identity): Member | undefined {
  const cert = call.getAuthContext?.()?.sslPeerCertificate;
  // A revoked certificate (shared/pki revoke) names nobody.
  if (!cert?.fingerprint256 || revokedFingerprints(path.dirname(self.ca_file)).has(cert.fingerprint256)) return undefined;
  return memberOf(cert.subject as Parameters<typeof memberOf>[0]);
}

/** A gRPC error a handler returns when the caller's certificate does not allow the call. */
export function permissionDenied(message: string): Partial<grpc.StatusObject> {
  return { code: grpcJs().status.PERMISSION_DENIED, details: message };
}

/** Client for the Coordinator service on one coordinator process (an agent's: it shows the node's certificate). */
export class CoordinatorClient {
  private readonly client: grpc.Client;
  constructor(readonly address: string, self: Identity) {
    this.client = new (load().Coordinator)(address, mutualTls(self, (peer) => (peer?.role === 'coordinator' ? undefined : `${address} is ${describe(peer)}, not a coordinator`)), CHANNEL_OPTIONS);
  }
  register(req: RegisterRequest) { return unary<RegisterRequest, RegisterReply>(this.client, 'Register', req, 5000); }
  heartbeat(req: HeartbeatRequest) { return unary<HeartbeatRequest, HeartbeatReply>(this.client, 'Heartbeat', req, 5000); }
  reportStatus(req: TaskStatusReport) { return unary<TaskStatusReport, Ack>(this.client, 'ReportStatus', req, 5000); }
  enrol(req: EnrolRequest) { return unary<EnrolRequest, EnrolReply>(this.client, 'Enrol', req, 10_000); }
  deregister(req: DeregisterRequest) { return unary<DeregisterRequest, Ack>(this.client, 'Deregister', req, 5000); }
  close() { this.client.close(); }
}

/** Assignments sent in one AssignBatch call at most (a few KB each, far under gRPC's 4 MB). */
const ASSIGN_BATCH = 256;

/** Client for the Agent service on one node (a coordinator's: it shows the coordinator's certificate, and the agent's must name `nodeId`). */
export class AgentClient {
  private readonly client: grpc.Client;
  private queued: { req: Assignment; resolve: (r: AssignReply) => void; reject: (e: Error) => void }[] = [];
  constructor(readonly address: string, self: Identity, nodeId: string) {
    this.client = new (load().Agent)(address, mutualTls(self, (peer) => (peer?.role === 'node' && peer.name === nodeId ? undefined : `${address} is ${describe(peer)}, not node ${nodeId}`)), CHANNEL_OPTIONS);
  }
  /**
   * Hands the agent one assignment. Assignments made while the leader handles one batch of I/O
   * go together, in one AssignBatch call: a placement pass costs each node one round trip and
   * one HTTP/2 request, not one per job.
   */
  assign(req: Assignment): Promise<AssignReply> {
    return new Promise((resolve, reject) => {
      if (this.queued.push({ req, resolve, reject }) === 1) setImmediate(() => this.sendAssignments());
    });
  }
  private sendAssignments(): void {
    const all = this.queued;
    this.queued = [];
    for (let i = 0; i < all.length; i += ASSIGN_BATCH) {
      const batch = all.slice(i, i + ASSIGN_BATCH);
      unary<AssignBatchRequest, AssignBatchReply>(this.client, 'AssignBatch', { assignments: batch.map((b) => b.req) }, 10_000).then(
        (r) => batch.forEach((b, k) => (r.replies[k] ? b.resolve(r.replies[k]) : b.reject(new Error(`the agent answered ${r.replies.length} of ${batch.length} assignments`)))),
        (e: Error) => batch.forEach((b) => b.reject(e)),
      );
    }
  }
  cancel(req: CancelRequest) { return unary<CancelRequest, Ack>(this.client, 'Cancel', req, 5000); }
  /** ffprobe and a dozen frames of siti: seconds on a large file, never minutes. */
  probe(req: ProbeRequest) { return unary<ProbeRequest, ProbeReply>(this.client, 'Probe', req, 30_000); }
  close() { this.client.close(); }
}

/**
 * Starts a gRPC server with one service on host:port (port 0 picks a free one); resolves with the
 * bound port. It speaks TLS only, shows `self`'s certificate and requires one from every caller,
 * signed by the cluster CA: handlers read who called with `callerOf`.
 */
export async function serve(service: grpc.ServiceDefinition, handlers: grpc.UntypedServiceImplementation, host: string, port: number, self: Identity): Promise<{ server: grpc.Server; port: number }> {
  const server = new (grpcJs().Server)();
  server.addService(service, handlers);
  const creds = grpcJs().ServerCredentials.createSsl(self.ca, [{ cert_chain: self.cert, private_key: self.key }], true);
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${port}`, creds, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, port: bound };
}

export function toAllocationMsg(a: ResourceAllocation): AllocationMsg { return { ...a }; }
export function fromAllocationMsg(m: AllocationMsg): ResourceAllocation {
  return { node_id: m.node_id, core_ids: [...m.core_ids], gpu_ids: [...m.gpu_ids], memory_gb: m.memory_gb, bandwidth_mbps: m.bandwidth_mbps, lease_expires_at: Number(m.lease_expires_at), term: Number(m.term) };
}

/** A gRPC error a handler returns to say "I am not the leader". */
export function notLeaderError(leader: string | undefined): Partial<grpc.StatusObject> {
  return { code: grpcJs().status.FAILED_PRECONDITION, details: `not the leader${leader ? `; leader is ${leader}` : ''}` };
}

/** A gRPC error a handler returns when its work failed. */
export function internalError(message: string): Partial<grpc.StatusObject> {
  return { code: grpcJs().status.INTERNAL, details: message };
}
export type { grpc };
