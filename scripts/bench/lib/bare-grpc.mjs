// The owner side of the peer path's Node ceiling: a bare grpc-js unary server answering every call with a
// constant 32-byte value (identity serializers: no protobuf work). Usage: node bare-grpc.mjs <port>
import { Server, ServerCredentials } from '@grpc/grpc-js';

const value = Buffer.from('v'.repeat(32));
const id = (b) => b;
const server = new Server();
server.addService(
  {
    get: {
      path: '/bench.Bare/Get',
      requestStream: false,
      responseStream: false,
      requestSerialize: id,
      requestDeserialize: id,
      responseSerialize: id,
      responseDeserialize: id,
    },
  },
  { get: (_call, cb) => cb(null, value) },
);
server.bindAsync(`127.0.0.1:${process.argv[2]}`, ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(err.message);
    process.exit(1);
  }
});
process.on('SIGTERM', () => process.exit(0));
