/**
 * What the leader's core is told (events) and what it asks for (effects). Events carry
 * everything a decision reads from outside: the time, the stream's stamp, a probe's outcome,
 * a stored record the shell had to fetch. So the same events through the same core give the
 * same decisions: the runtime logs them, and `prescient replay` re-runs them.
 */
import type {
  Assignment, EncodingTask, InputProbe, NodeCapacity, RunningTaskMsg, TaskEvent, TaskStatusReport,
} from '../../shared/index.js';
import type { LedgerState } from '../ledger/index.js';
import type { CorrectionTable } from '../feedback/index.js';
import type { QueuePolicy } from '../queue/index.js';
import type { ReservationPolicy } from '../sizing/index.js';
import type { LineLevel } from '../../shared/log.js';

/** What probing a submission's input gave: its probe, or why no node could make one. */
export type ProbeOutcome = { probe: InputProbe } | { failed: string };

/** One submission as JetStream delivered it: its decoded envelope (undefined: not JSON), when the stream stored it, its probe. */
export interface Submission {
  envelope: unknown;
  /** Who published it: its subject's last token, which NATS lets only that member publish on. */
  owner: string;
  stored_at?: number;
  probe?: ProbeOutcome;
}


/** How the core was configured, as the replay rebuilds it. */
export interface CoreConfig {
  lease_ms: number;
  max_attempts?: number;
  /** When an encode is stopped as hung (absent: the default). */
  time_limit?: { factor: number; min_ms: number };
  reservation?: ReservationPolicy;
  /** A built-in placement policy's name ('custom' cannot be replayed). */
  placement: string;
  queue_policy?: QueuePolicy;
  allowed_input_roots: string[];
  /** Absent in logs from before output paths. */
  allowed_output_roots?: string[];
  /** The coverage the model's upper bounds were loaded at (absent: the model's own). */
  coverage?: number;
}

export type LeaderEvent =
  /** The term began: the durable records of active tasks, the ledger saved by earlier terms, and the core's configuration. */
  | { kind: 'Started'; at: number; term: number; leader_id: string; tasks: EncodingTask[]; saved?: LedgerState; config?: CoreConfig }
  /** A batch of submissions, in stream order; placed together in one pass after they are admitted. */
  | { kind: 'Submitted'; at: number; submissions: Submission[] }
  | { kind: 'CancelRequested'; at: number; envelope: unknown; owner: string }
  | { kind: 'Registered'; at: number; capacity: NodeCapacity; running: RunningTaskMsg[] }
  /** `draining`: the agent is stopping; nothing new is placed on its node. */
  | { kind: 'Heartbeat'; at: number; node_id: string; running: RunningTaskMsg[]; draining?: boolean }
  /** The agent stopped: its node leaves the ledger, and its tasks are re-queued (their attempts not counted). */
  | { kind: 'Deregistered'; at: number; node_id: string; reason: string }
  /** An agent's report; `stored`: the task's record, read by the shell when the core no longer holds the task. */
  | { kind: 'StatusReported'; at: number; report: TaskStatusReport; stored?: EncodingTask }
  /**
   * The model in service, or the feedback corrections applied to it, changed: `revision` moves
   * with the corrections (-1: none applied); `corrections` are the table, where events are logged.
   */
  | { kind: 'ModelChanged'; at: number; version: string; revision?: number; corrections?: CorrectionTable }
  | { kind: 'Tick'; at: number }
  /** A pass asked for by a Wake effect. */
  | { kind: 'Wake'; at: number }
  /** Burst scale-down: exactly these nodes take nothing new. */
  | { kind: 'DrainingSet'; at: number; node_ids: string[] }
  // Outcomes of effects the core asked for.
  /** A first record found one of its id written by someone else: that submission is a duplicate. */
  | { kind: 'Duplicate'; at: number; task_id: string }
  /** Records that could not be written (their submissions are redelivered). */
  | { kind: 'RecordFailed'; at: number; task_ids: string[] }
  /** Submissions whose records could never be written, set aside in the dead-letter stream: forget them. */
  | { kind: 'DeadLettered'; at: number; task_ids: string[] }
  | { kind: 'AssignFailed'; at: number; task_id: string; node_id: string; reason: string; unreachable: boolean }
  | { kind: 'CancelAnswered'; at: number; task_id: string; not_running: boolean; reason: string }
  /** A group's master playlist was written (or, with `error`, could not be). */
  | { kind: 'PlaylistWritten'; at: number; group: string; task_ids: string[]; path: string; error?: string }
  /** A later term wrote the ledger: this leader places nothing more. */
  | { kind: 'Deposed'; at: number; reason: string };

export type Effect =
  /** Write the task's record: `first`, only if its id has none (a Duplicate event comes back otherwise). */
  | { kind: 'Record'; task: EncodingTask; first: boolean }
  /** Publish the task's event, once its Record (just before it) is written. */
  | { kind: 'Publish'; event: TaskEvent }
  /** Hand an assignment to a node's agent, once the task's Record is written. */
  | { kind: 'Assign'; node_id: string; address: string; assignment: Assignment }
  | { kind: 'Cancel'; node_id: string; address: string; task_id: string; term: number }
  /** The ledger changed: save it (soon). */
  | { kind: 'SaveLedger' }
  /** Run a pass (a Wake event) at this time, unless one is due sooner. */
  | { kind: 'Wake'; at: number }
  /** A line for the operator's log, at the level the core chose for it. */
  | { kind: 'Alert'; message: string; level: LineLevel }
  /**
   * Write a group's HLS master playlist (`text`) at `path`, beside its renditions, once all of them
   * succeeded; a PlaylistWritten event comes back. `path` must lie in the leader's output roots.
   */
  | { kind: 'WritePlaylist'; group: string; path: string; text: string; task_ids: string[] };

/** Replies the gRPC handlers give, from the event that carried the call. */
export type Reply =
  | { kind: 'heartbeat'; reregister: boolean }
  | { kind: 'ack'; ok: boolean; reason: string }
  /**
   * Per submission: its task id, or undefined; `dropped`: why one was not taken at all (not JSON,
   * no valid job id), so the shell sets it aside in the dead-letter stream with that reason.
   */
  | { kind: 'admitted'; task_ids: (string | undefined)[]; dropped: (string | undefined)[] };

