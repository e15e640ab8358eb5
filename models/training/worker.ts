/** Piscina worker: trains one target's network off the main thread (training.ts). */
import { trainNetwork, type NetworkTrainOptions, type TrainedNetwork } from '../network.js';

export interface NetworkJob {
  /** Row-major features and unit-scale targets, in SharedArrayBuffers (no copy per worker). */
  x: Float64Array;
  y: Float64Array;
  d: number;
  options: NetworkTrainOptions;
}

export default function train(job: NetworkJob): TrainedNetwork {
  return trainNetwork(job.x, job.y, job.d, job.options);
}
