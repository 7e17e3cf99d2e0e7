// The one logger interface of the library: the calls gossipcache makes (gRPC server, membership,
// createNode), a subset of pino's Logger, so a pino logger fits as it is and anything else needs four
// methods. Every component takes it as an option and defaults to silentLogger.

/** The logging calls gossipcache makes. A pino logger satisfies it. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** A logger that discards everything. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
