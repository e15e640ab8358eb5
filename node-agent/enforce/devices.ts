/** Which disk a path lives on, as the blkio/io throttles name it. */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { deviceNumbers, type BlockDevice } from './limits.js';

/**
 * The whole disk holding `p` (throttles refuse partitions, so a partition is traced to its disk
 * through /sys/dev/block), or why there is none: tmpfs, overlayfs and network filesystems have
 * no block device (major 0).
 */
export function diskOf(p: string): { disk: BlockDevice } | { why: string } {
  let dev: bigint;
  try {
    dev = statSync(p, { bigint: true }).dev;
  } catch (e) {
    return { why: `cannot stat ${p}: ${(e as Error).message}` };
  }
  const d = deviceNumbers(dev);
  const sys = `/sys/dev/block/${d.major}:${d.minor}`;
  if (d.major === 0 || !existsSync(sys)) return { why: `${p} is on no block device (${d.major}:${d.minor}, e.g. tmpfs, overlayfs or a network filesystem)` };
  if (!existsSync(path.join(sys, 'partition'))) return { disk: d };
  const parent = readFileSync(path.join(realpathSync(sys), '..', 'dev'), 'utf8').trim();
  const [major, minor] = parent.split(':').map(Number);
  return { disk: { major, minor } };
}
