/**
 * How much a task reserves. Prescient reserves its predicted upper bound; the other two are the
 * guesswork it replaces, kept so that benchmarks can compare them on the same cluster in one run:
 * fixed worker slots per node (Tdarr: N workers, each a 1/N share of the node) and a fixed
 * one core per job with nothing else reserved (Ray's default `num_cpus=1`).
 */
import { ConfigError, GPU_ENCODERS, isActor, type EncodingTask } from '../../shared/index.js';
import type { LedgerSnapshot } from '../ledger/index.js';
import type { PlacementRequest } from '../placement/index.js';

export type ReservationPolicy = { kind: 'predictive' } | { kind: 'fixed-slots'; slots: number } | { kind: 'one-core' };

/** Parses `predictive`, `fixed-slots:N` or `one-core`. */
export function parseReservationPolicy(text: string): ReservationPolicy {
  if (text === 'predictive' || text === 'one-core') return { kind: text };
  const m = /^fixed-slots:(\d{1,3})$/.exec(text);
  if (m && Number(m[1]) >= 1) return { kind: 'fixed-slots', slots: Number(m[1]) };
  throw new ConfigError('--reservation', `must be predictive, one-core or fixed-slots:N (N ≥ 1), got ${JSON.stringify(text)}`);
}

/** What `t` asks the ledger for under `policy`, given the fleet in `snap`. */
export function sizeRequest(t: EncodingTask, snap: LedgerSnapshot, policy: ReservationPolicy = { kind: 'predictive' }): PlacementRequest {
  const gpu = GPU_ENCODERS.has(t.schema.output.encoder);
  if (policy.kind === 'one-core') return { task_id: t.id, cores: 1, gpus: gpu ? 1 : 0, memory_gb: 0, bandwidth_mbps: 0 };
  if (policy.kind === 'fixed-slots') {
    // A slot is 1/N of the smallest node, so every node can hold N of them.
    const caps = snap.nodes.map((n) => n.capacity);
    const small = (f: (c: (typeof caps)[number]) => number) => (caps.length ? Math.min(...caps.map(f)) : 0);
    return {
      task_id: t.id,
      cores: Math.max(1, Math.floor(small((c) => c.core_ids.length) / policy.slots)),
      gpus: gpu ? 1 : 0,
      memory_gb: Math.floor((100 * small((c) => c.memory_gb)) / policy.slots) / 100,
      bandwidth_mbps: Math.floor((10 * small((c) => c.bandwidth_mbps)) / policy.slots) / 10,
    };
  }
  const up = t.predicted!.upper, expected = t.predicted!.expected;
  // CPU is elastic and pinned: fewer cores make an encode slower, never fail it, and cores
  // reserved beyond what it keeps busy stand idle. So it reserves the whole cores it is
  // expected to keep busy (never more than the biggest node has), and the calibrated bound is
  // kept for memory and bandwidth, which are not elastic. (The packing bench measured the
  // upper bound rounded up: 2 cores for jobs averaging 1.08, one job at a time on 2 cores.)
  // A live channel is the exception: with fewer cores it falls behind real time, so it gets
  // the whole cores its bound needs (5% of a core's slack rounds down).
  const biggest = Math.max(1, snap.max_cores);
  return {
    task_id: t.id,
    cores: gpu ? 1 : Math.min(biggest, Math.max(1, isActor(t.schema) ? Math.ceil(up.cpu_cores - 0.05) : Math.round(expected.cpu_cores))),
    gpus: gpu ? 1 : 0,
    // A task its memory limit stopped reserves at least its raised floor (leader reportStatus).
    memory_gb: Math.ceil(Math.max(up.memory_gb, t.memory_floor_gb ?? 0) * 100) / 100,
    bandwidth_mbps: Math.ceil(up.bandwidth_mbps * 10) / 10,
  };
}
