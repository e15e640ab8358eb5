/**
 * Resource prediction with brain.js. Targets are learned on a normalised log scale because
 * they span orders of magnitude (a 240p clip and a 4K film differ ~1000× in CPU time).
 *
 * Targets per encode: cpu_cores (mean parallelism), memory_gb (peak RSS), bandwidth_mbps,
 * and cpu_seconds_per_frame, from which duration = frames × cpu_s/frame ÷ cores granted.
 */
import brain from 'brain.js';
import type { EncodingSchema, Prediction, ResourceUsage } from '../shared/index.js';
import { FEATURE_COUNT, FEATURE_SPEC_VERSION, encodeFeatures, frameCount } from './features.js';

export const TARGETS = ['cpu_cores', 'memory_gb', 'bandwidth_mbps', 'cpu_s_per_frame'] as const;
export type Target = (typeof TARGETS)[number];
export type TargetValues = Record<Target, number>;

/** One training example: a schema's features and what the encode actually needed. */
export interface Sample { features: number[]; targets: TargetValues }

/** log10 range each target is squashed into before training (sigmoid outputs live in 0..1). */
const LOG_RANGE: Record<Target, [number, number]> = {
  cpu_cores: [-2, 2],          // 0.01 .. 100 cores
  memory_gb: [-3, 2],          // 1 MB .. 100 GB
  bandwidth_mbps: [-3, 4],     // 1 kbit/s .. 10 Gbit/s
  cpu_s_per_frame: [-5, 2],    // 10 µs .. 100 s per frame
};
const toUnit = (t: Target, v: number) => {
  const [lo, hi] = LOG_RANGE[t];
  return Math.min(1, Math.max(0, (Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)));
};
const fromUnit = (t: Target, u: number) => {
  const [lo, hi] = LOG_RANGE[t];
  return 10 ** (lo + Math.min(1, Math.max(0, u)) * (hi - lo));
};

/** What a placement engine needs from a model. */
export interface ResourcePredictor {
  readonly version: string;
  /** Predicts the encode's needs if it were granted `cores` CPU cores. */
  predict(schema: EncodingSchema, cores?: number): Prediction;
}

export interface ModelFile {
  format: 'prescient-model';
  version: string;
  feature_spec: string;
  feature_count: number;
  /** Multiplier from expected to upper bound, per target. */
  margins: TargetValues;
  trained_on: { samples: number; source: string };
  network: ReturnType<brain.NeuralNetwork<number[], number[]>['toJSON']>;
}

export class BrainPredictor implements ResourcePredictor {
  private constructor(private readonly net: brain.NeuralNetwork<number[], number[]>, readonly file: ModelFile) {}

  get version(): string { return this.file.version; }

  /** Trains a network on samples; `margins` set the upper bound as a multiple of the estimate. */
  static train(samples: Sample[], opts: { version: string; source: string; margins: TargetValues; iterations?: number }): BrainPredictor {
    const net = new brain.NeuralNetwork<number[], number[]>({ hiddenLayers: [16, 12], activation: 'sigmoid' });
    net.train(
      samples.map((s) => ({ input: s.features, output: TARGETS.map((t) => toUnit(t, s.targets[t])) })),
      { iterations: opts.iterations ?? 3000, errorThresh: 0.0005, learningRate: 0.1 },
    );
    return new BrainPredictor(net, {
      format: 'prescient-model', version: opts.version, feature_spec: FEATURE_SPEC_VERSION, feature_count: FEATURE_COUNT,
      margins: opts.margins, trained_on: { samples: samples.length, source: opts.source }, network: net.toJSON(),
    });
  }

  /** Loads a saved model, refusing one built for another feature spec. */
  static fromFile(file: ModelFile): BrainPredictor {
    if (file?.format !== 'prescient-model') throw new Error('not a Prescient model file');
    if (file.feature_spec !== FEATURE_SPEC_VERSION || file.feature_count !== FEATURE_COUNT) {
      throw new Error(`model ${file.version} was built for ${file.feature_spec}/${file.feature_count} features, this build uses ${FEATURE_SPEC_VERSION}/${FEATURE_COUNT}`);
    }
    const net = new brain.NeuralNetwork<number[], number[]>();
    net.fromJSON(file.network);
    return new BrainPredictor(net, file);
  }

  /** Raw target estimates for one feature vector. */
  estimate(features: number[]): TargetValues {
    const out = this.net.run(features) as ArrayLike<number>;
    return Object.fromEntries(TARGETS.map((t, i) => [t, fromUnit(t, out[i])])) as TargetValues;
  }

  predict(schema: EncodingSchema, cores?: number): Prediction {
    const est = this.estimate(encodeFeatures(schema));
    const frames = frameCount(schema);
    // CPU is elastic: an encode granted fewer cores than it could use runs longer, not faster.
    const granted = cores ?? Math.max(1, Math.ceil(est.cpu_cores * this.file.margins.cpu_cores));
    const cpuSeconds = frames * est.cpu_s_per_frame;
    const usage = (m: TargetValues | undefined): ResourceUsage => {
      const used = Math.min(est.cpu_cores * (m?.cpu_cores ?? 1), granted);
      return {
        cpu_cores: used,
        gpu_percent: 0,
        memory_gb: est.memory_gb * (m?.memory_gb ?? 1),
        bandwidth_mbps: est.bandwidth_mbps * (m?.bandwidth_mbps ?? 1),
        duration_s: (cpuSeconds * (m?.cpu_s_per_frame ?? 1)) / Math.max(Math.min(est.cpu_cores, granted), 0.05),
      };
    };
    return { model_version: this.version, expected: usage(undefined), upper: usage(this.file.margins) };
  }
}
