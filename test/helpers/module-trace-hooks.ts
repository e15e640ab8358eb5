/** The loader hook of module-trace.ts: appends each module the loader resolves to the file it was given. */
import { appendFileSync } from 'node:fs';

type Resolved = { url: string };
let file = '';

export function initialize(data: { file: string }): void {
  file = data.file;
}

export async function resolve(specifier: string, context: unknown, next: (s: string, c: unknown) => Promise<Resolved>): Promise<Resolved> {
  const r = await next(specifier, context);
  appendFileSync(file, `${r.url}\n`);
  return r;
}
