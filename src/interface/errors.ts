/**
 * Typed errors with stable codes.
 *
 * Every error that crosses a boundary (peer to peer, daemon to CLI) travels as `{code, message}` and is turned back
 * into the same class on the other side by `errorFromWire`. Callers match on `code` (or `instanceof`), never on text.
 * One table holds each code's HTTP status and the exit code gridctl uses for it; the errors a user meets first also
 * carry a `hint`, the next step (hints.ts, and docs/troubleshooting.md).
 */
import { hintFor } from './hints.ts'

export const ERRORS = {
  /** A request or flag is malformed: the user must change what they asked for. */
  INVALID_ARGUMENT: { status: 400, exit: 2 },
  /** The configuration (file, environment, flags) has one or more invalid values. */
  INVALID_CONFIG: { status: 400, exit: 2 },
  /** The thing named does not exist (node, session, task). */
  NOT_FOUND: { status: 404, exit: 1 },
  /** The endpoint exists but does not take this HTTP method (the answer's Allow header lists those it takes). */
  METHOD_NOT_ALLOWED: { status: 405, exit: 2 },
  /** The control API has no endpoint at this path (a NOT_FOUND is a thing the endpoint looked for: a task, a node). */
  NO_SUCH_ENDPOINT: { status: 404, exit: 2 },
  /** It exists already and the request would overwrite it. */
  CONFLICT: { status: 409, exit: 1 },
  /** A payload is larger than the documented limit. */
  TOO_LARGE: { status: 413, exit: 1 },
  /** No node can ever satisfy the request (for example no node has 3 GPUs). */
  UNSATISFIABLE: { status: 422, exit: 2 },
  /** A peer or the daemon did not answer before the deadline. */
  TIMEOUT: { status: 504, exit: 1 },
  /** A peer could not be reached (not connected, connection refused, wrong swarm key). */
  PEER_UNREACHABLE: { status: 502, exit: 1 },
  /** A peer sent a frame that is malformed or breaks the protocol. */
  PROTOCOL: { status: 502, exit: 1 },
  /** The local daemon's control socket could not be reached (or its answer broke off). */
  DAEMON_UNREACHABLE: { status: 503, exit: 1 },
  /** No daemon answers on the control socket: none there, or a stale one nobody listens on. */
  DAEMON_NOT_RUNNING: { status: 503, exit: 1 },
  /** The control socket (or its directory) is not open to this user. */
  SOCKET_PERMISSION_DENIED: { status: 503, exit: 1 },
  /** The daemon is starting or stopping and cannot serve this now. */
  UNAVAILABLE: { status: 503, exit: 1 },
  /** A peer has too many requests in flight here (a per-peer cap); the caller may retry after `details.retryAfterMs`. */
  BUSY: { status: 503, exit: 1 },
  /** The swarm key file is malformed or cannot be read. */
  SWARM_KEY: { status: 500, exit: 1 },
  /** The swarm key file named does not exist. */
  NO_SWARM_KEY: { status: 500, exit: 1 },
  /** The port this node should listen on is taken by another process. */
  PORT_IN_USE: { status: 500, exit: 1 },
  /** The request was cancelled by its caller. */
  CANCELLED: { status: 499, exit: 130 },
  /** A bug or an unexpected failure; the message says what happened. */
  INTERNAL: { status: 500, exit: 1 }
} as const satisfies Record<string, { status: number, exit: number }>

export type ErrorCode = keyof typeof ERRORS

export interface WireError {
  code: string
  message: string
  details?: unknown
  /** The next step (src/interface/hints.ts), for errors a user meets first. */
  hint?: string
}

export class GridError extends Error {
  readonly code: ErrorCode
  readonly details?: unknown
  /** What the user should do next; printed after the message as `error [CODE]: message — hint`. */
  readonly hint?: string

  constructor (code: ErrorCode, message: string, options?: { cause?: unknown, details?: unknown, hint?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.details = options?.details
    if (options?.hint !== undefined) this.hint = options.hint
    this.name = ERROR_NAMES[code]
  }

  get status (): number { return ERRORS[this.code].status }
  get exitCode (): number { return ERRORS[this.code].exit }

  toWire (): WireError {
    const w: WireError = this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details }
    // the next step travels too, so a client of the API (curl) reads it beside the message
    const hint = this.hint ?? hintFor(this.code)
    if (hint !== undefined) w.hint = hint
    return w
  }
}

const ERROR_NAMES: Record<ErrorCode, string> = {
  INVALID_ARGUMENT: 'InvalidArgumentError',
  INVALID_CONFIG: 'InvalidConfigError',
  NOT_FOUND: 'NotFoundError',
  METHOD_NOT_ALLOWED: 'MethodNotAllowedError',
  NO_SUCH_ENDPOINT: 'NoSuchEndpointError',
  CONFLICT: 'ConflictError',
  TOO_LARGE: 'TooLargeError',
  UNSATISFIABLE: 'UnsatisfiableError',
  TIMEOUT: 'TimeoutError',
  PEER_UNREACHABLE: 'PeerUnreachableError',
  PROTOCOL: 'ProtocolError',
  DAEMON_UNREACHABLE: 'DaemonUnreachableError',
  DAEMON_NOT_RUNNING: 'DaemonNotRunningError',
  SOCKET_PERMISSION_DENIED: 'SocketPermissionDeniedError',
  UNAVAILABLE: 'UnavailableError',
  BUSY: 'BusyError',
  SWARM_KEY: 'SwarmKeyError',
  NO_SWARM_KEY: 'NoSwarmKeyError',
  PORT_IN_USE: 'PortInUseError',
  CANCELLED: 'CancelledError',
  INTERNAL: 'InternalError'
}

type Options = { cause?: unknown, details?: unknown, hint?: string }

export class InvalidArgumentError extends GridError { constructor (m: string, o?: Options) { super('INVALID_ARGUMENT', m, o) } }
export class InvalidConfigError extends GridError {
  /** Every violation found, each naming the key and its source. */
  readonly violations: string[]
  constructor (violations: string[], o?: Options) {
    super('INVALID_CONFIG', `invalid configuration:\n  - ${violations.join('\n  - ')}`, { ...o, details: { violations } })
    this.violations = violations
  }
}
export class NotFoundError extends GridError { constructor (m: string, o?: Options) { super('NOT_FOUND', m, o) } }
export class NoSuchEndpointError extends GridError { constructor (m: string, o?: Options) { super('NO_SUCH_ENDPOINT', m, o) } }
export class ConflictError extends GridError { constructor (m: string, o?: Options) { super('CONFLICT', m, o) } }
export class TooLargeError extends GridError { constructor (m: string, o?: Options) { super('TOO_LARGE', m, o) } }
export class UnsatisfiableError extends GridError { constructor (m: string, o?: Options) { super('UNSATISFIABLE', m, o) } }
export class TimeoutError extends GridError { constructor (m: string, o?: Options) { super('TIMEOUT', m, o) } }
export class PeerUnreachableError extends GridError { constructor (m: string, o?: Options) { super('PEER_UNREACHABLE', m, o) } }
export class ProtocolError extends GridError { constructor (m: string, o?: Options) { super('PROTOCOL', m, o) } }
/** The socket could not be reached; the two causes a user meets first have codes of their own (and this class). */
export class DaemonUnreachableError extends GridError {
  constructor (m: string, o?: Options, code: 'DAEMON_UNREACHABLE' | 'DAEMON_NOT_RUNNING' | 'SOCKET_PERMISSION_DENIED' = 'DAEMON_UNREACHABLE') { super(code, m, o) }
}
export class DaemonNotRunningError extends DaemonUnreachableError { constructor (m: string, o?: Options) { super(m, o, 'DAEMON_NOT_RUNNING') } }
export class SocketPermissionDeniedError extends DaemonUnreachableError { constructor (m: string, o?: Options) { super(m, o, 'SOCKET_PERMISSION_DENIED') } }
export class UnavailableError extends GridError { constructor (m: string, o?: Options) { super('UNAVAILABLE', m, o) } }
export class BusyError extends GridError { constructor (m: string, o?: Options) { super('BUSY', m, o) } }
export class SwarmKeyError extends GridError { constructor (m: string, o?: Options) { super('SWARM_KEY', m, o) } }
export class NoSwarmKeyError extends GridError { constructor (m: string, o?: Options) { super('NO_SWARM_KEY', m, o) } }
export class PortInUseError extends GridError { constructor (m: string, o?: Options) { super('PORT_IN_USE', m, o) } }
export class CancelledError extends GridError { constructor (m: string, o?: Options) { super('CANCELLED', m, o) } }
export class InternalError extends GridError { constructor (m: string, o?: Options) { super('INTERNAL', m, o) } }

/**
 * The class of every code: what `errorFromWire` rebuilds, so that `instanceof` and `name` hold on the far side.
 * Every class but InvalidConfigError takes `(message, options)`; that one is built from its violations. A code with
 * no class here comes back as a GridError with that code.
 */
export const ERROR_CLASSES = {
  INVALID_ARGUMENT: InvalidArgumentError,
  INVALID_CONFIG: InvalidConfigError,
  NOT_FOUND: NotFoundError,
  /** Its class (with the Allow list) is the control server's, which only answers it over HTTP: a GridError here. */
  METHOD_NOT_ALLOWED: undefined,
  NO_SUCH_ENDPOINT: NoSuchEndpointError,
  CONFLICT: ConflictError,
  TOO_LARGE: TooLargeError,
  UNSATISFIABLE: UnsatisfiableError,
  TIMEOUT: TimeoutError,
  PEER_UNREACHABLE: PeerUnreachableError,
  PROTOCOL: ProtocolError,
  DAEMON_UNREACHABLE: DaemonUnreachableError,
  DAEMON_NOT_RUNNING: DaemonNotRunningError,
  SOCKET_PERMISSION_DENIED: SocketPermissionDeniedError,
  UNAVAILABLE: UnavailableError,
  BUSY: BusyError,
  SWARM_KEY: SwarmKeyError,
  NO_SWARM_KEY: NoSwarmKeyError,
  PORT_IN_USE: PortInUseError,
  CANCELLED: CancelledError,
  INTERNAL: InternalError
} as const satisfies Record<ErrorCode, (new (...args: never[]) => GridError) | undefined>

export function isErrorCode (code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code)
}

/**
 * Rebuilds a typed error from its wire form, as an instance of its code's class with the message and details it
 * carried; an unknown code becomes INTERNAL with the original code kept in its details.
 */
export function errorFromWire (wire: unknown): GridError {
  if (wire !== null && typeof wire === 'object') {
    const w = wire as Partial<WireError>
    const message = typeof w.message === 'string' ? w.message : 'unknown error'
    if (isErrorCode(w.code)) {
      if (w.code === 'INVALID_CONFIG') return invalidConfigFromWire(message, w.details)
      const options: Options | undefined = w.details === undefined && typeof w.hint !== 'string'
        ? undefined
        : { ...(w.details === undefined ? {} : { details: w.details }), ...(typeof w.hint === 'string' ? { hint: w.hint } : {}) }
      const Class = ERROR_CLASSES[w.code]
      return Class === undefined ? new GridError(w.code, message, options) : new Class(message, options)
    }
    return new InternalError(message, { details: w.details === undefined ? { code: w.code } : { code: w.code, details: w.details } })
  }
  return new InternalError('malformed error from peer')
}

/** Its violations come from the details; a sender that gave none (a bare GridError) gets its message as the one violation. */
function invalidConfigFromWire (message: string, details: unknown): InvalidConfigError {
  const v = (details as { violations?: unknown } | undefined)?.violations
  const e = new InvalidConfigError(Array.isArray(v) && v.every(x => typeof x === 'string') ? v : [message])
  e.message = message
  return e
}

/** Wraps anything thrown into a GridError, keeping the cause. */
export function toGridError (err: unknown): GridError {
  if (err instanceof GridError) return err
  if (err instanceof Error) {
    if (err.name === 'AbortError' || err.name === 'TimeoutError') return new TimeoutError(err.message, { cause: err })
    return new InternalError(err.message, { cause: err })
  }
  return new InternalError(String(err))
}
