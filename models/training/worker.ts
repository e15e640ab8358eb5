/** Piscina worker: trains one network off the main thread (training/index.ts). */
import { trainNetwork, type NetworkTrainOptions, type TrainedNetwork } from '../network.js';

export interface NetworkJob {
  /** Row-major features and unit-scale targets, in SharedArrayBuffers (no copy per worker). */
  x: Float64Array;
  y: Float64Array;
  d: number;
  /** Outputs per row (y is n × k). */
  k: number;
  options: NetworkTrainOptions;
}

export default function train(job: NetworkJob): TrainedNetwork {
  return trainNetwork(job.x, job.y, job.d, job.options, job.k);
}
