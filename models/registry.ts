/**
 * Where model files live and how one is loaded. The default model ships in `models/default/`;
 * a corrupt or mismatched file is refused with a clear error.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BrainPredictor, type ModelFile } from './predictor.js';

/** The model shipped with Prescient (see models/README.md for how it was made). */
export const DEFAULT_MODEL_PATH = fileURLToPath(new URL('../../models/default/model.json', import.meta.url));

export class ModelLoadError extends Error {
  constructor(readonly file: string, reason: string) {
    super(`cannot load model ${file}: ${reason}`);
    this.name = 'ModelLoadError';
  }
}

export function loadModel(file = DEFAULT_MODEL_PATH): BrainPredictor {
  let parsed: ModelFile;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as ModelFile;
  } catch (e) {
    throw new ModelLoadError(file, (e as Error).message);
  }
  try {
    return BrainPredictor.fromFile(parsed);
  } catch (e) {
    throw new ModelLoadError(file, (e as Error).message);
  }
}
