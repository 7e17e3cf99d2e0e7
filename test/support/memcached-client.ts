// A raw memcached text-protocol connection for tests: send bytes, read until the replies so far match.

import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

export class RawConn {
  private chunks: Buffer[] = [];
  /** Bytes received since the last until() returned. */
  received = 0;
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly sock: Socket) {
    sock.setNoDelay(true);
    sock.on('data', (b: Buffer) => {
      this.chunks.push(b);
      this.received += b.length;
      for (const w of this.waiters.splice(0)) w();
    });
    sock.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
    sock.on('error', () => {});
  }

  static async open(port: number): Promise<RawConn> {
    const sock = connect(port, '127.0.0.1');
    await once(sock, 'connect');
    return new RawConn(sock);
  }

  send(b: string | Buffer): void {
    this.sock.write(b);
  }

  /** Everything received so far, as latin1. */
  get text(): string {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks.length === 0 ? '' : this.chunks[0].toString('latin1');
  }

  /** Waits until `done(text)` holds (or the connection closes, or `ms` pass); returns and clears the text. */
  async until(done: (text: string) => boolean, ms = 10_000): Promise<string> {
    return this.wait(() => done(this.text), ms);
  }

  /** Waits until `n` bytes have arrived; returns and clears them. */
  async untilBytes(n: number, ms = 10_000): Promise<string> {
    return this.wait(() => this.received >= n, ms);
  }

  private async wait(done: () => boolean, ms: number): Promise<string> {
    const deadline = Date.now() + ms;
    while (!done()) {
      if (this.closed) break;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`timed out; received so far: ${JSON.stringify(this.text.slice(0, 500))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    const t = this.text;
    this.chunks = [];
    this.received = 0;
    return t;
  }

  /** Sends `req` and waits for `n` complete reply lines ending with one of `ends`. */
  async ask(
    req: string | Buffer,
    end: RegExp = /(END|STORED|NOT_STORED|DELETED|NOT_FOUND|TOUCHED|ERROR[^\r]*|VERSION [^\r]*|OK)\r\n$/,
  ): Promise<string> {
    this.send(req);
    return this.until((t) => end.test(t));
  }

  async closedByServer(ms = 10_000): Promise<void> {
    await this.until(() => false, ms).catch(() => {});
    if (!this.closed) throw new Error('the server did not close the connection');
  }

  close(): void {
    this.sock.destroy();
  }
}
