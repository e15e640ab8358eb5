/**
 * Public API of `node-agent/runner/`: runs encodes in a Piscina pool of worker threads, each
 * worker driving one ffmpeg process at a time. Progress and cancellation travel over a
 * MessagePort handed to the worker with its task.
 */
import os from 'node:os';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { EncodeAbortedError, FfmpegExitError, UnsupportedEncodeError } from '../ffmpeg/index.js';
import { checkSampleInterval } from '../sampling/index.js';
import { ReservationExceededError } from '../enforce/index.js';
import type { EncodeRunner, FromWorker, MeasuredEncode, SerializedError, ToWorker, WorkerOutcome, WorkerTask } from './types.js';

export type { EncodeJob, EncodeProgress, EncodeRunner, MeasuredEncode } from './types.js';
export { EncodeAbortedError, FfmpegExitError, UnsupportedEncodeError } from '../ffmpeg/index.js';

/** Idle worker threads are kept this long, so back-to-back encodes skip thread start-up. */
const IDLE_TIMEOUT_MS = 60_000;

/**
 * @param opts.maxThreads encodes run at once (others queue); defaults to the machine's cores.
 * @param opts.warm keep every worker thread started from the start (an agent): a thread started
 *   for a batch costs ~0.15 s of CPU loading its modules, which the packing bench counted against the agent.
 */
export function createEncodeRunner(opts: { maxThreads?: number; warm?: boolean } = {}): EncodeRunner {
  const maxThreads = opts.maxThreads ?? os.availableParallelism();
  const pool = new Piscina<WorkerTask, WorkerOutcome>({
    // Resolves next to this file, i.e. dist/node-agent/runner/worker.js once compiled.
    filename: new URL('./worker.js', import.meta.url).href,
    maxThreads,
    minThreads: opts.warm ? maxThreads : 0,
    idleTimeout: IDLE_TIMEOUT_MS,
  });
  /** Running encodes → how to cancel each. */
  const running = new Map<Promise<unknown>, () => void>();
  let closed = false;

  async function run(job: Parameters<EncodeRunner['run']>[0], { signal, onProgress, onSample, onLog }: Parameters<EncodeRunner['run']>[1] = {}): Promise<MeasuredEncode> {
    if (closed) throw new Error('encode runner is closed');
    if (signal?.aborted) throw new EncodeAbortedError();
    if (job.sample_interval_ms !== undefined) checkSampleInterval(job.sample_interval_ms);
    const { port1, port2 } = new MessageChannel();
    // The result travels on Piscina's own port and may overtake the worker's last messages on
    // this one, so the run settles only once the worker's `end` has arrived too.
    let ended!: () => void;
    const drained = new Promise<void>((resolve) => { ended = resolve; });
    port1.on('message', (m: FromWorker) => {
      if (m.type === 'progress') onProgress?.(m.progress);
      else if (m.type === 'sample') onSample?.(m.sample);
      else if (m.type === 'log') onLog?.(m.pass, m.line);
      else ended();
    });
    const cancel = () => port1.postMessage({ type: 'abort' } satisfies ToWorker);
    signal?.addEventListener('abort', cancel, { once: true });
    const task = pool.run({ job, port: port2 }, { transferList: [port2] });
    running.set(task, cancel);
    try {
      const [outcome] = await Promise.all([task, drained]);
      if (!outcome.ok) throw reviveError(outcome.error);
      return outcome.result;
    } finally {
      running.delete(task);
      signal?.removeEventListener('abort', cancel);
      port1.close();
    }
  }

  async function close(): Promise<void> {
    closed = true;
    for (const cancel of running.values()) cancel();
    await Promise.allSettled(running.keys());
    await pool.destroy();
  }

  return { run, close };
}

function reviveError(e: SerializedError): Error {
  switch (e.name) {
    case 'EncodeAbortedError': return new EncodeAbortedError();
    case 'FfmpegExitError': return new FfmpegExitError(e.exit_code, e.exit_signal, e.stderr_tail);
    case 'UnsupportedEncodeError': return new UnsupportedEncodeError(e.field, e.reason);
    case 'ReservationExceededError': return new ReservationExceededError(e.reserved_gb, e.how);
    default: return Object.assign(new Error(e.message), e.stack ? { stack: e.stack } : {});
  }
}
