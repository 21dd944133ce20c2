/**
 * The control API server: HTTP/1.1 + JSON on a Unix socket (mode 0660), routes under /v1, errors as
 * `{"error": {"code", "message"}}` with the code's HTTP status, streams as NDJSON. A path no route has is a 404 with
 * code NO_SUCH_ENDPOINT (NOT_FOUND is what an endpoint looked for: a task, a node); one that routes take only with
 * other methods is a 405 whose Allow header lists them. What the client sent wrong (a
 * target that is no URL, bad percent-encoding, a query parameter out of range: see query.ts) is a 400, never a 500.
 *
 * Bounded against a caller that holds connections: the headers of a request must arrive within
 * CONTROL_HEADERS_TIMEOUT_MS and the whole request (headers and body) within CONTROL_REQUEST_TIMEOUT_MS, or Node
 * answers 408 and closes the connection. Neither limits a response: an NDJSON stream runs as long as its client
 * reads. A request body is bounded JSON (`maxBodyBytes`), so the request deadline covers it; an upload that streams
 * for longer (a task's stdin, say) must come as a series of bounded requests, not as one endless body. At most
 * `maxConnections` connections are open at once; one more closes the one that has waited longest without a request
 * in progress (a half-sent request, an idle keep-alive), so a slowloris cannot lock gridctl out, and only when every
 * connection is serving a request is the new one refused.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { connect, type Socket } from 'node:net'
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Logger } from 'pino'
import { Counter, Histogram, type Registry } from 'prom-client'
import { API_PREFIX } from '../../proto/index.ts'
import {
  GridError, InvalidArgumentError, NoSuchEndpointError, TooLargeError, UnavailableError, toGridError, type Startable
} from '../interface/index.ts'
import { ConnectionCap, type ShedReason } from './connection-cap.ts'
import { MethodNotAllowedError } from './errors.ts'

export interface ApiRequest {
  method: string
  path: string
  params: Record<string, string>
  query: URLSearchParams
  /** The JSON body, parsed (at most `maxBodyBytes`); undefined when there is none. */
  body: () => Promise<unknown>
  /** The body's bytes as they came (at most `maxBodyBytes`), for an endpoint that takes more than JSON. */
  bytes: () => Promise<Buffer>
  /** The body's media type, lower case, without parameters ('' when none is given). */
  contentType: string
  /** Aborts when the client goes away. */
  signal: AbortSignal
}

/**
 * A handler answers with a JSON value, with one JSON document in pieces of its text (`jsonParts`: written as they come,
 * so a large one is never whole in memory), or with an async stream of values sent as NDJSON.
 */
export type ApiResult =
  | { status?: number, json: unknown }
  | { status?: number, jsonParts: Iterable<string> }
  | { status?: number, text: string, contentType: string }
  | { status?: number, stream: AsyncIterable<unknown> }

export type ApiHandler = (req: ApiRequest) => Promise<ApiResult> | ApiResult

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  /** Path under /v1 with `:name` parameters, e.g. `/nodes/:id`. */
  path: string
  handler: ApiHandler
  /** the largest JSON body this endpoint takes, when it is not the server's `maxBodyBytes` */
  maxBodyBytes?: number
}

export interface ControlServerInit {
  socket: string
  /** File mode of the socket: 0660 lets the owner and its group in, nobody else. */
  mode?: number
  maxBodyBytes?: number
  /** Connections open at once (default CONTROL_MAX_CONNECTIONS). */
  maxConnections?: number
  /** Tests shorten these (defaults CONTROL_HEADERS_TIMEOUT_MS, CONTROL_REQUEST_TIMEOUT_MS). */
  headersTimeoutMs?: number
  requestTimeoutMs?: number
}

/** Connections the control socket keeps open at once (config `control.maxConnections`). */
export const CONTROL_MAX_CONNECTIONS = 512
/** A request's headers must have arrived this long after its first byte. */
export const CONTROL_HEADERS_TIMEOUT_MS = 5_000
/** A whole request, body included (at most 4 MiB of JSON on a local socket), must have arrived in this time. */
export const CONTROL_REQUEST_TIMEOUT_MS = 10_000
/** Connections shed are logged at most this often. */
const SHED_LOG_EVERY_MS = 60_000

interface CompiledRoute extends Route { re: RegExp, names: string[] }

export class ControlServer implements Startable {
  private readonly routes: CompiledRoute[] = []
  private server?: Server
  private readonly requests: Counter<'route' | 'status'>
  private readonly seconds: Histogram<'route'>
  private readonly maxBodyBytes: number
  private cap?: ConnectionCap
  private readonly shed: Counter<'reason'>
  private lastShedLog = 0

  constructor (private readonly components: { logger: Logger, registry: Registry }, private readonly init: ControlServerInit) {
    this.maxBodyBytes = init.maxBodyBytes ?? 4 * 1024 * 1024
    this.requests = new Counter({ name: 'grid_control_requests_total', help: 'Control API requests by route and HTTP status', labelNames: ['route', 'status'], registers: [components.registry] })
    this.shed = new Counter({ name: 'grid_control_connections_shed_total', help: 'Control socket connections closed at the connection cap: evicted (waited longest without a request) or refused (every one busy)', labelNames: ['reason'], registers: [components.registry] })
    this.seconds = new Histogram({ name: 'grid_control_request_seconds', help: 'Control API request duration by route', labelNames: ['route'], buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [components.registry] })
  }

  add (route: Route): void {
    const names: string[] = []
    const re = new RegExp('^' + (API_PREFIX + route.path).replace(/:([A-Za-z]+)/g, (_, n: string) => { names.push(n); return '([^/]+)' }) + '/?$')
    this.routes.push({ ...route, re, names })
  }

  async start (): Promise<void> {
    const path = this.init.socket
    mkdirSync(dirname(path), { recursive: true, mode: 0o750 })
    await removeStaleSocket(path)
    const headersTimeout = this.init.headersTimeoutMs ?? CONTROL_HEADERS_TIMEOUT_MS
    const requestTimeout = Math.max(headersTimeout, this.init.requestTimeoutMs ?? CONTROL_REQUEST_TIMEOUT_MS)
    const server = createServer({
      keepAliveTimeout: 5_000,
      headersTimeout,
      requestTimeout,
      // how often Node checks those deadlines (its default, 30 s, would let a half-sent request live 6 times longer)
      connectionsCheckingInterval: Math.min(1_000, Math.ceil(headersTimeout / 2))
    }, (req, res) => { void this.dispatch(req, res) })
    const max = this.init.maxConnections ?? CONTROL_MAX_CONNECTIONS
    const cap = this.cap = new ConnectionCap(max, reason => { this.shedOne(reason, max) })
    server.on('connection', (socket: Socket) => { cap.admit(socket) })
    // the socket must never be world-writable, not even for the instant between listen and chmod
    const oldMask = process.umask(0o117)
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(path, () => { server.off('error', reject); resolve() })
      })
    } finally {
      process.umask(oldMask)
    }
    chmodSync(path, this.init.mode ?? 0o660)
    server.on('error', err => { this.components.logger.error({ err }, 'control server error') })
    this.server = server
  }

  async stop (): Promise<void> {
    const server = this.server
    if (server === undefined) return
    this.server = undefined
    server.closeIdleConnections()
    await new Promise<void>(resolve => {
      const t = setTimeout(() => { server.closeAllConnections(); resolve() }, 2_000)
      server.close(() => { clearTimeout(t); resolve() })
    })
    try { unlinkSync(this.init.socket) } catch {}
  }

  /** Open connections now (for tests). */
  get connections (): number { return this.cap?.size ?? 0 }

  private shedOne (reason: ShedReason, max: number): void {
    this.shed.inc({ reason })
    const now = Date.now()
    if (now - this.lastShedLog < SHED_LOG_EVERY_MS) return
    this.lastShedLog = now
    this.components.logger.warn({ reason, maxConnections: max }, 'control socket at its connection cap: closing connections (logged once a minute)')
  }

  private async dispatch (req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.cap?.track(req, res)
    const started = performance.now()
    let label = 'unmatched'
    const ctrl = new AbortController()
    res.on('close', () => { if (!res.writableFinished) ctrl.abort(new UnavailableError('client went away')) })
    try {
      const url = parseUrl(req.url)
      const method = req.method ?? 'GET'
      const match = this.match(method, url.pathname)
      label = `${match.route.method} ${match.route.path}`
      let read: Promise<Buffer> | undefined
      // the body is read once, whichever way the handler takes it
      const raw = async (): Promise<Buffer> => await (read ??= readBody(req, match.route.maxBodyBytes ?? this.maxBodyBytes))
      const result = await match.route.handler({
        method,
        path: url.pathname,
        params: match.params,
        query: url.searchParams,
        body: async () => parseJsonBody(await raw()),
        bytes: raw,
        contentType: (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '',
        signal: ctrl.signal
      })
      if ('json' in result) {
        sendJson(res, result.status ?? 200, result.json)
      } else if ('jsonParts' in result) {
        await sendParts(res, result.status ?? 200, result.jsonParts, ctrl.signal)
      } else if ('text' in result) {
        res.writeHead(result.status ?? 200, { 'content-type': result.contentType, 'content-length': Buffer.byteLength(result.text) })
        res.end(result.text)
      } else {
        await sendStream(res, result.status ?? 200, result.stream, ctrl.signal)
      }
    } catch (err) {
      const e = toGridError(err)
      if (e.code === 'INTERNAL') this.components.logger.error({ err, route: label }, 'control request failed')
      if (!res.headersSent) sendJson(res, e.status, { error: e.toWire() }, e instanceof MethodNotAllowedError ? { allow: e.allow.join(', ') } : {})
      else if (!res.writableEnded) res.end(JSON.stringify({ error: e.toWire() }) + '\n')
    } finally {
      this.requests.inc({ route: label, status: String(res.statusCode) })
      this.seconds.observe({ route: label }, (performance.now() - started) / 1000)
    }
  }

  /**
   * The route for a method and path, with its path parameters decoded. A path that a route matches with another method
   * is a 405 naming the methods it takes; a path no route matches is a 404.
   */
  private match (method: string, pathname: string): { route: CompiledRoute, params: Record<string, string> } {
    const allow = new Set<string>()
    for (const route of this.routes) {
      const m = route.re.exec(pathname)
      if (m === null) continue
      if (route.method !== method) { allow.add(route.method); continue }
      const params: Record<string, string> = {}
      route.names.forEach((n, i) => { params[n] = decodePathParameter(n, m[i + 1] as string) })
      return { route, params }
    }
    const allowed = [...allow].sort()
    if (allowed.length > 0) throw new MethodNotAllowedError(`${method} is not allowed on ${pathname}; it takes ${allowed.join(', ')}`, allowed)
    throw new NoSuchEndpointError(`no such endpoint: ${method} ${pathname} (the API lives under ${API_PREFIX})`)
  }
}

/** The request target as a URL; one that does not parse is the client's mistake. */
function parseUrl (target: string | undefined): URL {
  try {
    return new URL(target ?? '/', 'http://grid')
  } catch (err) {
    throw new InvalidArgumentError(`the request target ${JSON.stringify(target)} is not a valid URL path`, { cause: err })
  }
}

function decodePathParameter (name: string, raw: string): string {
  try {
    return decodeURIComponent(raw)
  } catch (err) {
    throw new InvalidArgumentError(`path parameter ${name} ${JSON.stringify(raw)} is not valid percent-encoding (encode it with encodeURIComponent)`, { cause: err })
  }
}

function sendJson (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/** One JSON document from the pieces of its text, written in writes of about 64 KiB as the client takes them. */
async function sendParts (res: ServerResponse, status: number, parts: Iterable<string>, signal: AbortSignal): Promise<void> {
  res.writeHead(status, { 'content-type': 'application/json' })
  let pending = ''
  for (const part of parts) {
    if (signal.aborted || res.destroyed) break
    pending += part
    if (pending.length < 65536) continue
    const text = pending
    pending = ''
    if (!res.write(text)) {
      await new Promise<void>(resolve => {
        const done = (): void => { res.off('drain', done); res.off('close', done); resolve() }
        res.once('drain', done)
        res.once('close', done)
      })
    }
  }
  res.end(pending)
}

async function sendStream (res: ServerResponse, status: number, stream: AsyncIterable<unknown>, signal: AbortSignal): Promise<void> {
  res.writeHead(status, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' })
  res.flushHeaders()
  // lines produced in the same turn of the event loop leave in one write
  let pending = ''
  let scheduled: NodeJS.Immediate | undefined
  const flush = (): boolean => {
    scheduled = undefined
    if (pending === '' || res.writableEnded) return true
    const text = pending
    pending = ''
    return res.write(text)
  }
  try {
    for await (const item of stream) {
      if (signal.aborted) break
      pending += JSON.stringify(item) + '\n'
      if (pending.length >= 65536) {
        clearImmediate(scheduled)
        if (!flush()) {
          await new Promise<void>(resolve => {
            const done = (): void => { res.off('drain', done); res.off('close', done); resolve() }
            res.once('drain', done)
            res.once('close', done)
          })
        }
      } else {
        scheduled ??= setImmediate(flush)
      }
    }
  } catch (err) {
    if (!signal.aborted) pending += JSON.stringify({ error: toGridError(err).toWire() }) + '\n'
  }
  clearImmediate(scheduled)
  flush()
  res.end()
}

async function readBody (req: IncomingMessage, max: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).byteLength
    if (size > max) throw new TooLargeError(`request body is over the ${max}-byte limit`)
    chunks.push(chunk as Buffer)
  }
  return chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks, size)
}

function parseJsonBody (body: Buffer): unknown {
  if (body.byteLength === 0) return undefined
  try {
    return JSON.parse(body.toString('utf8'))
  } catch (err) {
    throw new InvalidArgumentError(`request body is not JSON (${(err as Error).message})`)
  }
}

/** A socket file left by a daemon that crashed is removed; one that a live daemon answers on is an error. */
async function removeStaleSocket (path: string): Promise<void> {
  if (!existsSync(path)) return
  const live = await new Promise<boolean>(resolve => {
    const s = connect(path)
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => { resolve(false) })
  })
  if (live) throw new GridError('CONFLICT', `another gridd is already serving the control socket ${path}; stop it, or give this one another --socket and --data-dir`)
  unlinkSync(path)
}
