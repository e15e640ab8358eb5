/**
 * What an NVIDIA GPU can encode, from its model name and driver version: NVENC and NVDEC engine
 * counts, and how many encoder sessions the ledger should let it run at once. Pure: no I/O.
 *
 * Sources (transcribed by hand; no GPU was at hand to check them against, see README.md,
 * "GPU discovery"):
 * - Engine counts: NVIDIA's "Video Encode and Decode GPU Support Matrix"
 *   (developer.nvidia.com/video-encode-decode-gpu-support-matrix) and the cards' datasheets.
 *   Hopper (H100, H200, H800, GH200) and GA100 (A100, A800, A30) have NVDECs but no NVENC.
 * - Session limits: the same matrix. Data-centre and professional cards are "unrestricted";
 *   GeForce and TITAN cards are capped by the driver, per system: 3 concurrent sessions until
 *   March 2023, 5 from the R530 driver branch, 8 from the R550 branch (January 2024; Linux
 *   550.40.07, which Windows numbers 551.23). See `consumerSessionCap`.
 *
 * A model not in the table gets conservative figures, flagged `assumed`.
 */
import type { GpuProfile } from '../shared/index.js';

/**
 * How the concurrent encoder sessions of a card are limited.
 * - `driver-capped`  GeForce / TITAN: NVIDIA's driver refuses sessions beyond a cap that depends
 *                    on the driver version (`consumerSessionCap`).
 * - `unrestricted`   data-centre and professional cards: no licence cap, only the engines'
 *                    throughput; the ledger gives them `SESSIONS_PER_ENGINE` per NVENC engine.
 */
export type SessionPolicy = 'driver-capped' | 'unrestricted';

/** One row of the table: the models whose nvidia-smi name matches `pattern`. */
export interface GpuModel {
  /** Matched against the name nvidia-smi reports ("NVIDIA L4", "Tesla T4", "NVIDIA GeForce RTX 4090"). */
  readonly pattern: RegExp;
  /** What the row covers, in words (for docs and tests). */
  readonly family: string;
  readonly nvenc_engines: number;
  readonly nvdec_engines: number;
  readonly policy: SessionPolicy;
  /** True for a family-wide row whose engine counts are a guess for the exact model. */
  readonly assumed?: boolean;
}

/**
 * Sessions the ledger gives each NVENC engine of an `unrestricted` card. A scheduling choice,
 * not a hardware limit: an engine time-slices its sessions, and every session here is a whole
 * batch encode that runs as fast as it can, so beyond a handful per engine each encode only
 * gets slower (and its predicted time worse). 8 is what NVIDIA's current consumer driver
 * allows one card, most of which have a single engine; an L4 (2 engines) gets 16, an L40S 24.
 */
export const SESSIONS_PER_ENGINE = 8;

/**
 * Sessions of a GPU whose model is not in the table: the cap consumer drivers long had, and the
 * ledger's default for agents that report no figure (coordinator/ledger/types.ts
 * DEFAULT_GPU_SESSIONS). Conservative: an unknown card may be a capped consumer one.
 */
export const UNKNOWN_MODEL_SESSIONS = 3;

/**
 * The table, most specific rows first: the first row whose pattern matches wins. Patterns use
 * word boundaries so that "A10" does not match "A100" nor "A40" match "RTX A4000".
 */
export const GPU_MODELS: readonly GpuModel[] = [
  // Data centre, no NVENC.
  { pattern: /\b(GH200|H100|H200|H800)\b/, family: 'Hopper (H100, H200, H800, GH200)', nvenc_engines: 0, nvdec_engines: 7, policy: 'unrestricted' },
  { pattern: /\b(A100|A800)\b/, family: 'GA100 (A100, A800)', nvenc_engines: 0, nvdec_engines: 5, policy: 'unrestricted' },
  { pattern: /\bA30\b/, family: 'A30', nvenc_engines: 0, nvdec_engines: 4, policy: 'unrestricted' },
  // Data centre with NVENC.
  { pattern: /\bL40S?\b/, family: 'L40, L40S', nvenc_engines: 3, nvdec_engines: 3, policy: 'unrestricted' },
  { pattern: /\bL4\b/, family: 'L4', nvenc_engines: 2, nvdec_engines: 4, policy: 'unrestricted' },
  { pattern: /\b(A10G?|A40|A16|A2)\b/, family: 'GA10x data centre (A10, A10G, A40, A16 per GPU, A2)', nvenc_engines: 1, nvdec_engines: 2, policy: 'unrestricted' },
  { pattern: /\bT4\b/, family: 'T4', nvenc_engines: 1, nvdec_engines: 2, policy: 'unrestricted' },
  { pattern: /\bV100\b/, family: 'V100', nvenc_engines: 3, nvdec_engines: 1, policy: 'unrestricted' },
  // Professional.
  { pattern: /\bRTX 6000 Ada\b/, family: 'RTX 6000 Ada Generation', nvenc_engines: 3, nvdec_engines: 3, policy: 'unrestricted' },
  { pattern: /\bRTX (5000|4500|4000) Ada\b/, family: 'RTX 5000/4500/4000 Ada Generation', nvenc_engines: 2, nvdec_engines: 2, policy: 'unrestricted' },
  { pattern: /\bRTX A(6000|5500|5000)\b/, family: 'RTX A6000, A5500, A5000', nvenc_engines: 1, nvdec_engines: 2, policy: 'unrestricted' },
  // Consumer: exact rows where the engine count differs from one NVENC, one NVDEC.
  { pattern: /\bGeForce RTX 5090\b/, family: 'GeForce RTX 5090', nvenc_engines: 3, nvdec_engines: 2, policy: 'driver-capped' },
  { pattern: /\bGeForce RTX 5080\b/, family: 'GeForce RTX 5080', nvenc_engines: 2, nvdec_engines: 2, policy: 'driver-capped' },
  { pattern: /\bGeForce RTX 40(90|80)\b|\bGeForce RTX 4070 Ti\b/, family: 'GeForce RTX 4090, 4080, 4070 Ti (AD102/AD103/AD104)', nvenc_engines: 2, nvdec_engines: 1, policy: 'driver-capped' },
  { pattern: /\bGeForce GT 1030\b/, family: 'GeForce GT 1030 (GP108: no NVENC)', nvenc_engines: 0, nvdec_engines: 1, policy: 'driver-capped' },
  { pattern: /\bGeForce RTX (20|30|40)\d0\b|\bGeForce GTX 16\d0\b/, family: 'GeForce RTX 20/30/40 series, GTX 16 series (others)', nvenc_engines: 1, nvdec_engines: 1, policy: 'driver-capped' },
  // Any other consumer card: the driver cap still holds; the engine counts are a guess.
  { pattern: /\b(GeForce|TITAN)\b/, family: 'other GeForce / TITAN', nvenc_engines: 1, nvdec_engines: 1, policy: 'driver-capped', assumed: true },
];

/** What the ledger and `prescient nodes` are told of one GPU's video engines. */
export interface GpuVideo {
  nvenc_engines: number;
  nvdec_engines: number;
  /** Concurrent encoder sessions; 0 when the GPU has no NVENC. */
  sessions: number;
  /** `known` when the table has the model and the driver version was readable. */
  profile: GpuProfile;
  /** The table row used (its `family`), or why none was. */
  basis: string;
}

/** The driver branch of a version string ("550.54.15" → 550), or undefined when unreadable. */
export function driverBranch(driver: string): number | undefined {
  const m = /^(\d{2,4})(?:\.\d+)*$/.exec(driver.trim());
  return m ? Number(m[1]) : undefined;
}

/**
 * Concurrent NVENC sessions NVIDIA's driver allows a GeForce / TITAN card: 8 from the R550
 * branch, 5 from R530, 3 before (drivers older than about 2020 allowed 2; they are not
 * modelled). An unreadable version gets 3, the lowest cap modelled.
 */
export function consumerSessionCap(driver: string): number {
  const branch = driverBranch(driver);
  if (branch === undefined) return 3;
  if (branch >= 550) return 8;
  if (branch >= 530) return 5;
  return 3;
}

/** The table row for a model name, or undefined when none matches. */
export function findGpuModel(name: string): GpuModel | undefined {
  return GPU_MODELS.find((m) => m.pattern.test(name));
}

/** Engines and encoder sessions of a GPU, from its nvidia-smi name and driver version. */
export function describeGpuModel(name: string, driver: string): GpuVideo {
  const model = findGpuModel(name);
  if (!model) {
    return { nvenc_engines: 1, nvdec_engines: 1, sessions: UNKNOWN_MODEL_SESSIONS, profile: 'assumed', basis: `"${name}" is not in the model table: 1 NVENC, 1 NVDEC and ${UNKNOWN_MODEL_SESSIONS} sessions assumed` };
  }
  const byEngines = model.nvenc_engines * SESSIONS_PER_ENGINE;
  if (model.policy === 'unrestricted') {
    return { nvenc_engines: model.nvenc_engines, nvdec_engines: model.nvdec_engines, sessions: byEngines, profile: model.assumed ? 'assumed' : 'known', basis: model.family };
  }
  const readable = driverBranch(driver) !== undefined;
  return {
    nvenc_engines: model.nvenc_engines, nvdec_engines: model.nvdec_engines,
    sessions: Math.min(byEngines, consumerSessionCap(driver)),
    profile: model.assumed || !readable ? 'assumed' : 'known',
    basis: readable ? `${model.family}, driver ${driver} caps sessions at ${consumerSessionCap(driver)}` : `${model.family}, driver version unknown: the lowest cap assumed`,
  };
}
