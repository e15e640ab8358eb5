/**
 * The model registry: versioned model files with their metadata, which one is in service, and
 * the history of promotions and rollbacks.
 *
 *   <dir>/versions/<version>.json   one immutable, checksummed model file per version
 *   <dir>/registry.json             { current, history[] }  (rewritten atomically under a lock)
 *
 * The model shipped in models/default is always there as the version of last resort: it is in
 * service until something is promoted, and a rollback past the first promotion returns to it.
 * Nothing is promoted that does not load, and a file that stops loading (corrupt, edited) is
 * refused by `LiveModel` while the previous model stays in service.
 */
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EncodingSchema, Prediction } from '../shared/index.js';
import { Model, ModelFileError, type ModelFile, type PredictContext, type ResourcePredictor } from './model.js';
import type { Log } from '../shared/log.js';

/** The model shipped with Prescient (models/README.md says how it was made). */
export const DEFAULT_MODEL_PATH = fileURLToPath(new URL('../../models/default/model.json', import.meta.url));

/** Reads, parses and checks one model file. Throws ModelFileError with the reason. */
export function loadModelFile(file = DEFAULT_MODEL_PATH, o: { coverage?: number } = {}): Model {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ModelFileError(file, (e as Error).message);
  }
  return Model.fromFile(raw, { source: file, coverage: o.coverage });
}

export interface RegistryEvent {
  at: string;
  action: 'register' | 'promote' | 'rollback';
  version: string;
  reason: string;
}

export interface RegistryEntry {
  version: string;
  created_at: string;
  /** `shipped` for the model in models/default. */
  file: string;
  shipped: boolean;
  current: boolean;
  parent?: string;
  trained_on?: ModelFile['trained_on'];
  metrics?: unknown;
  /** Why the file could not be read, if it could not. */
  error?: string;
}

interface RegistryState { current: string | null; history: RegistryEvent[] }

/** A registry operation that cannot be done (unknown version, nothing to roll back to, a lock held too long). */
export class RegistryError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'RegistryError';
  }
}

export class ModelRegistry {
  readonly versionsDir: string;
  private readonly stateFile: string;

  constructor(readonly dir: string, private readonly shippedPath = DEFAULT_MODEL_PATH) {
    this.versionsDir = path.join(dir, 'versions');
    this.stateFile = path.join(dir, 'registry.json');
  }

  private state(): RegistryState {
    if (!existsSync(this.stateFile)) return { current: null, history: [] };
    try {
      return JSON.parse(readFileSync(this.stateFile, 'utf8')) as RegistryState;
    } catch (e) {
      throw new RegistryError(`${this.stateFile} is not readable: ${(e as Error).message}`);
    }
  }

  private fileOf(version: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(version)) throw new RegistryError(`${JSON.stringify(version)} is not a model version name`);
    return path.join(this.versionsDir, `${version}.json`);
  }

  /** The version in service (the shipped model's until something is promoted). */
  currentVersion(): string {
    return this.state().current ?? this.shippedVersion();
  }

  shippedVersion(): string {
    return (JSON.parse(readFileSync(this.shippedPath, 'utf8')) as ModelFile).version;
  }

  /** Path of a version's file (the shipped one included). */
  pathOf(version: string): string {
    const f = this.fileOf(version);
    if (existsSync(f)) return f;
    if (version === this.shippedVersion()) return this.shippedPath;
    throw new RegistryError(`no model version ${version} in ${this.versionsDir}`);
  }

  /** Loads a version (default: the current one). Throws ModelFileError if its file does not load. */
  load(version = this.currentVersion(), o: { coverage?: number } = {}): Model {
    return loadModelFile(this.pathOf(version), o);
  }

  /** Every version, newest first, the shipped one last. */
  list(): RegistryEntry[] {
    const current = this.currentVersion();
    const entry = (file: string, shipped: boolean): RegistryEntry => {
      try {
        const f = JSON.parse(readFileSync(file, 'utf8')) as ModelFile;
        return { version: f.version, created_at: f.created_at, file, shipped, current: f.version === current, parent: f.parent, trained_on: f.trained_on, metrics: f.metrics };
      } catch (e) {
        return { version: path.basename(file, '.json'), created_at: '', file, shipped, current: false, error: (e as Error).message };
      }
    };
    const files = existsSync(this.versionsDir) ? readdirSync(this.versionsDir).filter((f) => f.endsWith('.json')).map((f) => path.join(this.versionsDir, f)) : [];
    const mine = files.map((f) => entry(f, false)).sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    return [...mine, entry(this.shippedPath, true)];
  }

  /** Stores a new version's file (never overwrites one). */
  register(model: Model, reason = 'trained'): string {
    const file = this.fileOf(model.version);
    return this.locked(() => {
      if (existsSync(file) || model.version === this.shippedVersion()) throw new RegistryError(`model version ${model.version} already exists`);
      mkdirSync(this.versionsDir, { recursive: true });
      writeAtomic(file, JSON.stringify(model.file));
      this.append({ action: 'register', version: model.version, reason });
      return file;
    });
  }

  /** Puts a version in service, once its file has loaded. */
  promote(version: string, reason: string): void {
    this.load(version);
    this.locked(() => {
      const s = this.state();
      s.current = version;
      this.save(s, { action: 'promote', version, reason });
    });
  }

  /** Returns to the version promoted before the current one (the shipped model if none). */
  rollback(reason: string): string {
    return this.locked(() => {
      const s = this.state();
      const current = s.current ?? this.shippedVersion();
      // The chain of versions put in service, oldest first; the current one is its last.
      const served = s.history.filter((e) => e.action !== 'register').reduce<string[]>((chain, e) => {
        if (e.action === 'promote') chain.push(e.version);
        else chain.pop();
        return chain;
      }, []);
      if (!served.length || served[served.length - 1] !== current) {
        throw new RegistryError(`nothing to roll back: ${current === this.shippedVersion() ? `${current} is the shipped model` : `${current} was not put in service by a promotion`} and nothing promoted is before it`);
      }
      const previous = served[served.length - 2] ?? this.shippedVersion();
      this.load(previous);
      s.current = previous === this.shippedVersion() ? null : previous;
      this.save(s, { action: 'rollback', version: previous, reason: `${reason} (from ${current})` });
      return previous;
    });
  }

  history(): RegistryEvent[] {
    return this.state().history;
  }

  /** A fresh version name: m-YYYYMMDD-HHMMSS, with a suffix if that second is taken. */
  newVersion(now = new Date()): string {
    const base = `m-${now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)}`;
    for (let i = 0; ; i++) {
      const v = i ? `${base}-${i}` : base;
      if (!existsSync(this.fileOf(v))) return v;
    }
  }

  /** mtime of registry.json, for cheap change detection. */
  stamp(): number {
    return existsSync(this.stateFile) ? statSync(this.stateFile).mtimeMs : 0;
  }

  private append(e: Omit<RegistryEvent, 'at'>): void {
    this.save(this.state(), e);
  }

  private save(s: RegistryState, e: Omit<RegistryEvent, 'at'>): void {
    s.history.push({ at: new Date().toISOString(), ...e });
    mkdirSync(this.dir, { recursive: true });
    writeAtomic(this.stateFile, JSON.stringify(s, null, 2));
  }

  /** Runs `fn` holding registry.lock, so a CLI and a retraining leader never interleave writes. */
  private locked<T>(fn: () => T): T {
    mkdirSync(this.dir, { recursive: true });
    const lock = path.join(this.dir, 'registry.lock');
    const until = Date.now() + 10_000;
    for (;;) {
      try {
        closeSync(openSync(lock, 'wx'));
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        // A holder that died leaves its lock behind; nothing holds it for 30 s.
        try { if (Date.now() - statSync(lock).mtimeMs > 30_000) rmSync(lock, { force: true }); } catch { /* gone already */ }
        if (Date.now() > until) throw new RegistryError(`${lock} is held by another process`);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 25);
      }
    }
    try {
      return fn();
    } finally {
      rmSync(lock, { force: true });
    }
  }
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/**
 * The model a long-running process predicts with: the registry's current version, swapped in
 * when it changes (a promotion, a rollback). A version that fails to load is logged and the
 * model in service stays.
 */
export class LiveModel implements ResourcePredictor {
  private model: Model;
  private seen = -1;
  private timer?: NodeJS.Timeout;

  constructor(private readonly registry: ModelRegistry, private readonly o: { coverage?: number; log?: Log } = {}) {
    this.model = this.loadCurrent() ?? registry.load(registry.shippedVersion(), o);
  }

  get version(): string { return this.model.version; }
  get current(): Model { return this.model; }

  predict(schema: EncodingSchema, ctx?: PredictContext): Prediction {
    return this.model.predict(schema, ctx);
  }

  predictEach(schema: EncodingSchema, ctxs: readonly PredictContext[]): Prediction[] {
    return this.model.predictEach(schema, ctxs);
  }

  /** Checks the registry now; returns true when another model went into service. */
  refresh(): boolean {
    const stamp = this.registry.stamp();
    if (stamp === this.seen) return false;
    this.seen = stamp;
    const next = this.loadCurrent();
    if (!next || next.version === this.model.version) return false;
    this.o.log?.(`model ${next.version} in service (was ${this.model.version})`);
    this.model = next;
    return true;
  }

  /** Polls the registry every `ms`. */
  watch(ms = 2000): this {
    this.timer = setInterval(() => this.refresh(), ms);
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private loadCurrent(): Model | undefined {
    let version = '(unknown)';
    try {
      version = this.registry.currentVersion();
      if (this.model?.version === version) return this.model;
      return this.registry.load(version, this.o);
    } catch (e) {
      this.o.log?.(`model ${version} refused, ${this.model ? `${this.model.version} stays in service` : 'using the shipped model'}: ${(e as Error).message}`, 'warn');
      return undefined;
    }
  }
}
