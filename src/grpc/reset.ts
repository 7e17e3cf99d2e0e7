// Resetting a server call's HTTP/2 stream. grpc-js has no public way to drop a call whose client
// does not read: ending it with a status queues the trailers behind the replies the client's window
// holds back, so the replies (and the call) stay in memory until the connection closes. An HTTP/2
// RST_STREAM is not flow-controlled: it reaches the client at once and discards what was queued.
//
// The http2 stream is reached through grpc-js internals (call.call, down the interceptor chain's
// nextCall, to BaseServerInterceptingCall.stream, in grpc-js 1.10–1.14), each step checked; when
// they are not found the call is ended with the status instead (its accounting is given back by
// the caller either way). test/grpc/stall.test.ts fails if the reset stops working.

import http2 from 'node:http2';
import { status } from '@grpc/grpc-js';

interface CallInternals {
  call?: { stream?: unknown; nextCall?: unknown };
}

/** The call's http2 stream, if grpc-js's internals are where they are expected. */
export function http2StreamOf(call: object): http2.ServerHttp2Stream | undefined {
  let c = (call as CallInternals).call as { stream?: unknown; nextCall?: unknown } | undefined;
  for (let depth = 0; depth < 8 && c && typeof c === 'object'; depth++) {
    const s = c.stream as Partial<http2.ServerHttp2Stream> | undefined;
    // Http2Stream is not exported by node:http2: recognise it by what is used here.
    if (s && typeof s.close === 'function' && typeof s.respond === 'function' && 'rstCode' in s) {
      return s as http2.ServerHttp2Stream;
    }
    c = c.nextCall as typeof c;
  }
  return undefined;
}

/**
 * Ends `call` at once: RST_STREAM ENHANCE_YOUR_CALM (grpc clients report RESOURCE_EXHAUSTED),
 * dropping the replies still queued for it. Returns false when only a status could be sent.
 */
export function resetCall(call: NodeJS.EventEmitter & object, message: string): boolean {
  const stream = http2StreamOf(call);
  if (stream) {
    resetStream(stream);
    return true;
  }
  call.emit('error', { code: status.RESOURCE_EXHAUSTED, details: message });
  return false;
}

/** RST_STREAM ENHANCE_YOUR_CALM on `stream` unless it is already gone. */
export function resetStream(stream: http2.Http2Stream): void {
  if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
}
