// The Node ceiling for the memcached bench: a net server that answers every line with one fixed get reply
// (no parsing, no cache): what a hit through the memcached front costs at the least on this Node.
import { createServer } from 'node:net';

const REPLY = Buffer.from('VALUE key-0000 0 16\r\nValue of key-000\r\nEND\r\n');
createServer((s) => {
  s.setNoDelay(true);
  s.on('error', () => {});
  s.on('data', (d) => {
    let n = 0;
    for (let i = d.indexOf(10); i !== -1; i = d.indexOf(10, i + 1)) n++;
    s.write(n === 1 ? REPLY : Buffer.concat(Array(n).fill(REPLY)));
  });
}).listen(Number(process.argv[2]), '127.0.0.1');
