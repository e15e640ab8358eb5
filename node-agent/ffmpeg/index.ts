/** Public API of `node-agent/ffmpeg/`: schema → argv compilation, running ffmpeg, its errors. */
export {
  compileComplexityProbe, compileEncode, compilePilot, parseVideoKb, PILOT_FRAMES, compileLive, compileQuality, parseQuality, CONTAINERS, LOSSLESS_PSNR_DB, PROGRESS_PERIOD_S, LIVE_SEGMENT_S, LIVE_WINDOW_SEGMENTS,
  type Container, type EncodePlan, type EncodeTarget, type Grant, type InputAccess, type LivePlan,
} from './args.js';
export { runFfmpeg, ffmpegPath, type FfmpegProgress, type FfmpegRun, type RunFfmpegOptions } from './run.js';
export { EncodeAbortedError, FfmpegExitError, UnsupportedEncodeError } from './errors.js';
export { FOLLOWING_DEMUXERS, openInput, resolveInput, type HandedInput } from './inputs.js';
export { describeFfmpegPrivileges, ffmpegUser, type FfmpegUser } from './sandbox.js';
/** Moved to shared/config.ts; still re-exported for test/integration/encode-runner.test.ts. */
