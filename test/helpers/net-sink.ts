/**
 * A TCP sink for shaping tests: `node net-sink.js <host> <port>` takes one connection, prints
 * `listening` once it can, then on the connection's end one JSON line: the bytes received and
 * the seconds from the first byte to the last, and exits.
 */
import net from 'node:net';

const [host, port] = process.argv.slice(2);
let bytes = 0;
let first: bigint | undefined, last: bigint | undefined;
const server = net.createServer((c) => {
  c.on('data', (d: Buffer) => {
    last = process.hrtime.bigint();
    first ??= last;
    bytes += d.length;
  });
  c.on('end', () => {
    const seconds = first === undefined ? 0 : Number(last! - first) / 1e9;
    process.stdout.write(`${JSON.stringify({ bytes, seconds })}\n`);
    server.close();
  });
});
server.listen(Number(port), host, () => process.stdout.write('listening\n'));
