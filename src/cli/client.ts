/**
 * The typed client of the local daemon's control API (HTTP over its Unix socket). Errors come back as the same
 * typed errors the daemon raised; a socket nobody answers on is a DaemonUnreachableError naming the socket.
 */
import type { ClientRequest, RequestOptions } from 'node:http'
import { createRequire } from 'node:module'
import { createInterface } from 'node:readline'
import { API_PREFIX } from '../../proto/api.ts'
import { DaemonNotRunningError, DaemonUnreachableError, GridError, HINTS, InternalError, SocketPermissionDeniedError, errorFromWire, formatDurationExact } from '../interface/index.ts'

/**
 * node:http through require, not `import`: an ESM import of a builtin evaluates every export, and node:http's lazy
 * ones load Node's bundled undici (fetch, WebSocket) and TLS: about 20 ms of every gridctl call (bench/cli).
 */
export const { request } = createRequire(import.meta.url)('node:http') as typeof import('node:http')

export interface ClientOptions {
  socket: string
  timeoutMs?: number
}

export class ApiClient {
  constructor (readonly opts: ClientOptions) {}

  async get<T> (path: string, signal?: AbortSignal): Promise<T> {
    return await this.call<T>('GET', path, undefined, signal)
  }

  async post<T> (path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    return await this.call<T>('POST', path, json(body), signal)
  }

  /** POST of a body that is not JSON (`contentType` names it); the answer is JSON as for `post`. */
  async postBytes<T> (path: string, body: Uint8Array, contentType: string, signal?: AbortSignal): Promise<T> {
    return await this.call<T>('POST', path, { bytes: body, contentType }, signal)
  }

  async put<T> (path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    return await this.call<T>('PUT', path, json(body), signal)
  }

  async delete<T> (path: string, signal?: AbortSignal): Promise<T> {
    return await this.call<T>('DELETE', path, undefined, signal)
  }

  /** Opens an NDJSON stream and yields each object; an `{"error": …}` line ends it with that error. */
  async * stream<T> (method: string, path: string, body?: unknown, signal?: AbortSignal): AsyncGenerator<T> {
    const res = await this.open(method, path, json(body), signal, true)
    if ((res.statusCode ?? 500) >= 300) throw await errorOf(res)
    const lines = createInterface({ input: res, crlfDelay: Infinity })
    try {
      for await (const line of lines) {
        if (line.trim() === '') continue
        const obj = parseLine(line, method, path) as T & { error?: unknown }
        if (obj !== null && typeof obj === 'object' && 'error' in obj && Object.keys(obj).length === 1) throw errorFromWire(obj.error)
        yield obj as T
      }
    } catch (err) {
      // the connection dropped mid-answer (Node says only "aborted"): the daemon stopped or crashed
      if (err instanceof GridError || signal?.aborted === true) throw err
      throw new DaemonUnreachableError(`the daemon at ${this.opts.socket} went away (it stopped or crashed) before its answer ended`, { cause: err })
    } finally {
      lines.close()
      // a caller that stops reading early ends the request; after a complete answer this does nothing
      res.destroy()
    }
  }

  private async call<T> (method: string, path: string, body: RawBody | undefined, signal?: AbortSignal): Promise<T> {
    const res = await this.open(method, path, body, signal, false)
    if ((res.statusCode ?? 500) >= 300) throw await errorOf(res)
    const text = await readAll(res)
    try {
      return JSON.parse(text) as T
    } catch {
      throw new InternalError(`the daemon answered ${method} ${path} with something that is not JSON`)
    }
  }

  /**
   * Sends one request. Node's global agent keeps connections alive, and the daemon closes one idle for 5 s: a request
   * that goes out on a reused connection just as the daemon closes it is reset before the daemon read it, so it is
   * sent once more, on a connection opened for it (`agent: false`): the daemon closes idle connections together, so
   * another pooled one (--sync's parallel uploads leave several) is likely closed as well.
   */
  private async open (method: string, path: string, payload: RawBody | undefined, signal: AbortSignal | undefined, streaming: boolean): Promise<import('node:http').IncomingMessage> {
    try {
      return await this.openOnce(method, path, payload, signal, streaming)
    } catch (err) {
      if (!(err instanceof StaleConnectionError)) throw err
      return await this.openOnce(method, path, payload, signal, streaming, true)
    }
  }

  private async openOnce (method: string, path: string, payload: RawBody | undefined, signal: AbortSignal | undefined, streaming: boolean, retried = false): Promise<import('node:http').IncomingMessage> {
    return await new Promise((resolve, reject) => {
      const options: RequestOptions & { servername: string } = {
        socketPath: this.opts.socket,
        path: API_PREFIX + path,
        method,
        headers: payload === undefined ? {} : { 'content-type': payload.contentType, 'content-length': payload.bytes.byteLength },
        // a name for the agent's TLS server name, which it otherwise works out from the host 'localhost' through
        // net.isIP: the first call compiles its IPv6 expression, 5 ms of every gridctl call (bench/cli); plain HTTP
        // on a Unix socket never uses it
        servername: 'localhost',
        ...(retried ? { agent: false } : {}),
        ...(signal === undefined ? {} : { signal })
      }
      const req = request(options, resolve)
      if (!streaming && this.opts.timeoutMs !== undefined) {
        req.setTimeout(this.opts.timeoutMs, () => { req.destroy(new Error(`no answer within ${formatDurationExact(this.opts.timeoutMs ?? 0)}`)) })
      }
      req.on('error', err => {
        if (!retried && staleConnection(req, err)) reject(new StaleConnectionError())
        else reject(this.unreachable(err))
      })
      req.end(payload?.bytes)
    })
  }

  private unreachable (err: Error): GridError {
    return daemonUnreachable(this.opts.socket, err)
  }
}

/**
 * Why a request on the socket failed, typed: cancelled by the caller (CANCELLED), nothing there or nobody listening (DAEMON_NOT_RUNNING), not open to this
 * user (SOCKET_PERMISSION_DENIED), or else DAEMON_UNREACHABLE with the system's reason. Each names the socket.
 */
export function daemonUnreachable (socket: string, err: Error): GridError {
  if (err.name === 'AbortError') return errorFromWire({ code: 'CANCELLED', message: 'cancelled' })
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'ENOTDIR') {
    const why = code === 'ECONNREFUSED' ? ' (the socket is there, but nobody listens on it: gridd stopped or crashed and left it)' : ''
    return new DaemonNotRunningError(`no gridd answers at ${socket}${why}`, { cause: err, hint: HINTS.DAEMON_NOT_RUNNING })
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new SocketPermissionDeniedError(`permission denied on ${socket}: this user (uid ${process.getuid?.() ?? '?'}) may not use gridd's control socket`, { cause: err, hint: HINTS.SOCKET_PERMISSION_DENIED })
  }
  return new DaemonUnreachableError(`cannot reach gridd at ${socket}: ${err.message}`, { cause: err })
}

/** A request's body as it goes on the wire. */
interface RawBody { bytes: Uint8Array, contentType: string }

const json = (body: unknown): RawBody | undefined => body === undefined ? undefined : { bytes: Buffer.from(JSON.stringify(body)), contentType: 'application/json' }

/** A kept-alive connection the daemon had closed: the request never reached it. */
class StaleConnectionError extends Error {}

/**
 * True when a request failed because the kept-alive connection it reused had just been closed by the daemon (it
 * never read the request): such a request may be sent again once, on a fresh connection. On a Unix socket the write
 * into a connection the daemon closed fails with EPIPE rather than ECONNRESET.
 */
export function staleConnection (req: ClientRequest, err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code
  return req.reusedSocket && (code === 'ECONNRESET' || code === 'EPIPE')
}

/** One NDJSON line; a line cut short (the connection dropped mid-object) is not JSON. */
function parseLine (line: string, method: string, path: string): unknown {
  try {
    return JSON.parse(line)
  } catch (err) {
    throw new InternalError(`the daemon's ${method} ${path} stream sent a line that is not JSON: ${line.slice(0, 200)}`, { cause: err })
  }
}

async function readAll (res: AsyncIterable<unknown>): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of res) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

async function errorOf (res: import('node:http').IncomingMessage): Promise<GridError> {
  const text = await readAll(res)
  try {
    const body = JSON.parse(text) as { error?: unknown }
    if (body.error !== undefined) return errorFromWire(body.error)
  } catch {}
  return new InternalError(`the daemon answered HTTP ${res.statusCode ?? '?'}: ${text.slice(0, 200)}`)
}
