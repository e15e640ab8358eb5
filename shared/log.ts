/**
 * Logs of the long-running commands (coordinator, agent, dev, demo): pino, one JSON object a line
 * when stdout is not a terminal (journald, files, log shippers), a readable line on a terminal.
 * `--log-level` (or PRESCIENT_LOG_LEVEL) filters; `PRESCIENT_LOG_FORMAT=json|text` overrides
 * the choice of format.
 *
 * Every object carries `member` (`coordinator/c1`, `node/enc-1`) and, where the message starts
 * with a bracketed part as the services write them (`[leader c1 t3] …`), that part as
 * `component`. The services log through a `Log`, `(message, level?) => void`: the level is chosen
 * where the line is written (`log('could not reach Consul, retrying', 'warn')`) and is `info`
 * when none is given. Every message is redacted (shared/redact.ts) before it is written.
 *
 * Lines are written once per turn of the event loop (turnBatchedStdout), as the services wrote
 * them before pino.
 */
import pino from 'pino';

type Logger = pino.Logger;
import { writeSync } from 'node:fs';
import { redactText } from './redact.js';
import { parseLogLevel, type LogLevel } from './config.js';

export { LOG_LEVELS, parseLogLevel, type LogLevel } from './config.js';

/** A level a line is written at: any of `--log-level`'s but `silent`, which only filters. */
export type LineLevel = Exclude<LogLevel, 'silent'>;

/**
 * How the services log: a sentence and the level it is written at (`info` when left out). A plain
 * `(message) => void` is one too; it just does not see the level.
 */
export type Log = (message: string, level?: LineLevel) => void;

/** A pino logger for one member, writing to stdout (format and level as the header says). */
export function memberLogger(member: string, o: { level?: LogLevel; format?: 'json' | 'text'; stream?: NodeJS.WritableStream } = {}): Logger {
  const level = o.level ?? parseLogLevel(process.env.PRESCIENT_LOG_LEVEL) ?? 'info';
  const envFormat = process.env.PRESCIENT_LOG_FORMAT;
  const format = o.format ?? (envFormat === 'json' || envFormat === 'text' ? envFormat : process.stdout.isTTY ? 'text' : 'json');
  const dest = o.stream ?? turnBatchedStdout();
  const logger = format === 'json'
    ? pino({ level, base: { member }, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } }, dest)
    : pino({ level, base: undefined, timestamp: false, formatters: { level: (label) => ({ level: label }) } }, textStream(dest));
  return logger;
}

/**
 * stdout written once per turn of the event loop: a leader placing thousands of jobs a second
 * logs a line per state change, and a write per line (what pino's own destinations do when told
 * not to hold lines back) cost about a fifth of its placements per core-second in the
 * submit-latency bench. Nothing is held past the turn, and what is pending is written
 * synchronously at exit.
 */
let pending: string[] = [];
function flushPending(): void {
  if (!pending.length) return;
  const text = pending.join('');
  pending = [];
  process.stdout.write(text);
}
function turnBatchedStdout(): NodeJS.WritableStream {
  if (!process.listeners('exit').includes(flushAtExit)) process.once('exit', flushAtExit);
  return { write(chunk: string) { if (pending.push(chunk) === 1) setImmediate(flushPending); return true; } } as unknown as NodeJS.WritableStream;
}
function flushAtExit(): void {
  if (!pending.length) return;
  try { writeSync(1, pending.join('')); } catch { /* stdout closed */ }
  pending = [];
}

/** Turns pino's JSON lines into `TIME LEVEL message` for a terminal. */
function textStream(out: NodeJS.WritableStream): NodeJS.WritableStream {
  return {
    write(chunk: string) {
      for (const line of String(chunk).split('\n')) {
        if (!line) continue;
        try {
          const o = JSON.parse(line) as { level: string; msg: string };
          out.write(`${new Date().toISOString()} ${o.level === 'info' ? '' : `${o.level.toUpperCase()} `}${o.msg}\n`);
        } catch { out.write(`${line}\n`); }
      }
      return true;
    },
    flush() { (out as { flush?: () => void }).flush?.(); },
  } as unknown as NodeJS.WritableStream;
}

/** The `Log` the services take: each sentence at the level given (info when none), with its component. */
export function sentenceLog(logger: Logger): Log {
  return (message, level = 'info') => {
    if (!logger.isLevelEnabled(level)) return;
    const m = redactText(message);
    const c = /^\[([^\]]{1,80})\]\s*/.exec(m);
    if (c) logger[level]({ component: c[1] }, m);
    else logger[level](m);
  };
}
