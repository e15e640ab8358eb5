/**
 * A preload (`node --import`) that writes the process's own CPU time (user and system, all its
 * threads) to the file named by PRESCIENT_CPU_FILE as it exits: Node gives no rusage of a child,
 * and /proc/PID/stat is gone once the child has been reaped. Processes it spawns are not counted.
 */
import { writeFileSync } from 'node:fs';

const file = process.env.PRESCIENT_CPU_FILE;
if (file) {
  process.on('exit', () => {
    const u = process.cpuUsage();
    writeFileSync(file, JSON.stringify({ user_us: u.user, system_us: u.system }));
  });
}
