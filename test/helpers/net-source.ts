/** A TCP sender for shaping tests: `node net-source.js <host> <port> <bytes>` sends that many bytes as fast as it may, then closes. */
import net from 'node:net';

const [host, port, total] = process.argv.slice(2);
const chunk = Buffer.alloc(64 * 1024, 0x5a);
let left = Number(total);
const c = net.connect(Number(port), host, () => {
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      left -= n;
      if (!c.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void c.once('drain', pump);
    }
    c.end();
  };
  pump();
});
c.on('error', (e) => {
  process.stderr.write(`net-source: ${e.message}\n`);
  process.exitCode = 1;
});
