/** One error class per way compiling or running ffmpeg can fail. */

/**
 * A validated schema (or grant) that this node's ffmpeg cannot run as asked, e.g. two-pass
 * with ffmpeg 5.1's libsvtav1, or an nvenc encode granted no GPU. `field` names what is at fault.
 */
export class UnsupportedEncodeError extends Error {
  constructor(readonly field: string, readonly reason: string) {
    super(`${field}: ${reason}`);
    this.name = 'UnsupportedEncodeError';
  }
}

/** ffmpeg (or the taskset/setpriv wrappers before it) exited non-zero; the message ends with its last stderr lines. */
export class FfmpegExitError extends Error {
  constructor(readonly exit_code: number | null, readonly exit_signal: string | null, readonly stderr_tail: string) {
    super(`ffmpeg ${exit_code === null ? `was killed by ${exit_signal}` : `exited with code ${exit_code}`}${stderr_tail ? `:\n${stderr_tail}` : ''}`);
    this.name = 'FfmpegExitError';
  }
}

/** The encode was cancelled; ffmpeg has exited by the time this is thrown. */
export class EncodeAbortedError extends Error {
  constructor(what = 'encode') {
    super(`${what} cancelled`);
    this.name = 'EncodeAbortedError';
  }
}
