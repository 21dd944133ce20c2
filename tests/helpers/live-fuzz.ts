/**
 * The live fuzzer: a process that holds the swarm key (a Rogue) and attacks one daemon on every peer protocol and its
 * control socket at once, until stopped:
 * - RPC streams: malformed frames (mutated from the fuzz corpus), oversized ones (a prefix claiming 1 GiB),
 *   truncated ones (half a frame, then the stream closed), replayed ones (a valid state push and a request sent again
 *   and again) and out-of-order ones (answers, events and cancels for requests never made);
 * - streams opened on one connection until the daemon refuses them;
 * - garbage on the other protocols a daemon speaks (kad-dht, gossipsub, ping, identify);
 * - malformed gossip on the heartbeat topic;
 * - a flood of bad requests on the control socket (garbage, wrong methods, unknown paths, bodies that are not JSON,
 *   too large or cut short), which must be answered 4xx (a 500 is counted: it is a bug).
 * When the daemon bans the identity (it refuses to connect), the fuzzer notes it and, if `rotate`, goes on with a new
 * identity (a key holder can make any number).
 */
import { connect } from 'node:net'
import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import fc from 'fast-check'
import * as varint from 'uint8-varint'
import { DHT_PROTOCOL, RPC_PROTOCOL, encode, encodeRpcFrame, heartbeatTopic, type Frame } from '../../proto/index.ts'
import { seedBytes, seedValues } from '../fuzz/corpus.ts'
import { hostileBytes, mutatedValue } from '../fuzz/mutate.ts'
import { Rogue } from './rogue.ts'

export interface LiveFuzzTarget {
  /** the daemon's peer id and one of its addresses */
  id: string
  addr: string
  /** its control socket */
  socket: string
  cluster?: string
}

export interface LiveFuzzStats {
  rpcStreams: number
  rpcStreamsReset: number
  /** streams the daemon refused when opened past its limit */
  streamsRefused: number
  otherProtocolStreams: number
  gossip: number
  http: number
  httpStatus: Record<string, number>
  /** identities the daemon banned (it refused to connect again) */
  banned: number
  /** redials of a banned identity, and how many the daemon refused */
  redials: number
  redialsRefused: number
  identities: number
}

const OTHER_PROTOCOLS = [DHT_PROTOCOL, '/meshsub/1.0.0', '/meshsub/1.1.0', '/meshsub/1.2.0', '/ipfs/ping/1.0.0', '/ipfs/id/1.0.0', '/ipfs/id/push/1.0.0']
/** Control requests that cannot change the node when their body is wrong; JSON-shaped bodies go only to these. */
const SAFE_POSTS = ['/v1/sync/missing', '/v1/sync/read', '/v1/call', '/v1/tasks/no-such-task/stdin', '/v1/tasks/no-such-task/cancel', '/v1/jobs/no-such-job/cancel', '/v1/workflows/no-such/pause']
const GETS = ['/v1/status', '/v1/nodes', '/v1/nodes/%ff%fe', '/v1/health', '/v1/health/x', '/v1/tasks', '/v1/tasks/..%2f..%2fetc', '/v1/sessions', '/v1/sessions/a', '/v1/pools', '/v1/metrics', '/v1/queue', '/v1/workflows/x', '/v1/stats', '/v2/x', '/', '/v1/' + 'a'.repeat(3000)]
const PAUSE_MS = 20

export class LiveFuzzer {
  readonly stats: LiveFuzzStats = { rpcStreams: 0, rpcStreamsReset: 0, streamsRefused: 0, otherProtocolStreams: 0, gossip: 0, http: 0, httpStatus: {}, banned: 0, redials: 0, redialsRefused: 0, identities: 0 }
  private rogue!: Rogue
  private readonly bannedRogues: Rogue[] = []
  private stopped = false
  private readonly loops: Array<Promise<void>> = []
  private readonly frames: Uint8Array[]
  private readonly bodies: string[]
  private readonly garbage: Uint8Array[]
  private readonly valid: Frame[]
  private i = 0

  private constructor (private readonly swarmKey: string, private readonly target: LiveFuzzTarget, private readonly opts: { rotate: boolean, seed: number }) {
    const seed = opts.seed
    this.frames = fc.sample(hostileBytes(seedBytes('rpc-frame')), { numRuns: 2_000, seed })
    this.garbage = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 2048 }), { numRuns: 500, seed })
    const values = ['control-task', 'control-job', 'control-body', 'control-workflow'].flatMap(t => seedValues(t))
    this.bodies = fc.sample(mutatedValue(values), { numRuns: 1_000, seed }).map(v => { try { return JSON.stringify(v) ?? 'null' } catch { return '{' } })
    this.valid = [
      { type: 'request', id: 1, method: 'member.ping', data: {}, deadlineMs: 2_000 },
      { type: 'keepalive', nonce: 1, reply: false }
    ]
  }

  static async start (swarmKey: string, target: LiveFuzzTarget, opts: { rotate?: boolean, seed?: number } = {}): Promise<LiveFuzzer> {
    const f = new LiveFuzzer(swarmKey, target, { rotate: opts.rotate ?? true, seed: opts.seed ?? 1 })
    await f.newIdentity()
    f.loops.push(f.loop(() => f.rpcAttack()), f.loop(() => f.rpcAttack()), f.loop(() => f.rpcAttack()), f.loop(() => f.streamsUntilRefused(), 5_000),
      f.loop(() => f.otherProtocols()), f.loop(() => f.gossipAttack()), f.loop(() => f.controlFlood()), f.loop(() => f.controlFlood()))
    return f
  }

  /** The identity attacking now. */
  get id (): string { return this.rogue.id }

  async stop (): Promise<void> {
    this.stopped = true
    await Promise.allSettled(this.loops)
    await Promise.allSettled([this.rogue, ...this.bannedRogues].map(async r => { await r.stop() }))
  }

  /** Whether the daemon still refuses a banned identity of ours: it dials again. */
  async refused (id: string): Promise<boolean | undefined> {
    const r = this.bannedRogues.find(x => x.id === id)
    return r === undefined ? undefined : !(await this.connects(r))
  }

  /**
   * Whether `r` can connect to the daemon and stay connected: a daemon that refuses a peer does so once the peer's
   * identity is known (after Noise), so the dialler may see its dial succeed and the connection closed just after.
   */
  private async connects (r: Rogue): Promise<boolean> {
    try {
      await r.connect(this.target.addr)
    } catch {
      return false
    }
    await sleep(500)
    const peer = peerIdFromString(this.target.id)
    if (r.node.getConnections(peer).length === 0) return false
    try {
      const s = await r.node.dialProtocol(peer, RPC_PROTOCOL, { signal: AbortSignal.timeout(2_000) })
      s.abort(new Error('only a probe'))
      return true
    } catch {
      return false
    }
  }

  private async newIdentity (): Promise<void> {
    this.rogue = await Rogue.start(this.swarmKey)
    this.stats.identities++
    this.rogue.subscribe(heartbeatTopic(this.target.cluster ?? 'grid'))
    await this.rogue.connect(this.target.addr)
  }

  private async loop (step: () => Promise<void>, pauseMs = PAUSE_MS): Promise<void> {
    while (!this.stopped) {
      try {
        await step()
      } catch {
        if (!this.stopped) await this.onRefused()
      }
      await sleep(pauseMs)
    }
  }

  /** A step failed: if we are no longer connected and cannot connect again, the daemon banned this identity. */
  private refusing?: Promise<void>
  private async onRefused (): Promise<void> {
    this.refusing ??= (async () => {
      const peer = peerIdFromString(this.target.id)
      if (this.rogue.node.getConnections(peer).length > 0) return
      this.stats.redials++
      if (await this.connects(this.rogue)) return
      this.stats.redialsRefused++
      this.stats.banned++
      if (this.opts.rotate && !this.stopped) {
        this.bannedRogues.push(this.rogue)
        await this.newIdentity()
      }
    })().catch(() => {}).finally(() => { this.refusing = undefined })
    await this.refusing
  }

  private next<T> (xs: T[]): T { return xs[this.i++ % xs.length] as T }

  private async dial (protocol: string): Promise<Stream> {
    return await this.rogue.node.dialProtocol(peerIdFromString(this.target.id), protocol, { signal: AbortSignal.timeout(5_000) })
  }

  /** One RPC stream with one kind of bad traffic on it; resolves when the stream ends or after 100 ms. */
  private async rpcAttack (): Promise<void> {
    const stream = await this.dial(RPC_PROTOCOL)
    this.stats.rpcStreams++
    const ended = new Promise<void>(resolve => {
      stream.addEventListener('close', evt => { if (evt.error !== undefined) this.stats.rpcStreamsReset++; resolve() })
    })
    const kind = this.i % 5
    const frame = (f: Frame): Uint8Array => encodeRpcFrame(f, 1 << 24)
    try {
      switch (kind) {
        case 0: stream.send(this.next(this.frames)); break // malformed
        case 1: stream.send(new Uint8Array([...varint.encode(2 ** 30), 1, 2, 3])); break // oversized
        case 2: { const f = frame(this.next(this.valid)); stream.send(f.subarray(0, Math.max(1, f.byteLength >> 1))); await stream.close(); break } // truncated
        case 3: { // replayed: the same request id and the same (unsigned) state push again and again
          const req = frame({ type: 'request', id: 7, method: 'member.ping', data: {}, deadlineMs: 2_000 })
          const push = frame({ type: 'notify', method: 'state.push', data: { w: this.rogue.id, g: 1, n: 0, u: new Uint8Array([0, 0]), s: new Uint8Array(64) } })
          for (let k = 0; k < 20; k++) { stream.send(req); stream.send(push) }
          break
        }
        case 4: { // out of order: answers and events for requests never made, cancels of nothing, unasked keepalive replies
          for (let id = 1000; id < 1010; id++) {
            stream.send(frame({ type: 'result', id, data: { inc: 1 } }))
            stream.send(frame({ type: 'event', id, data: null }))
            stream.send(frame({ type: 'error', id, error: { code: 'NOT_A_CODE', message: 'x' } }))
            stream.send(frame({ type: 'cancel', id }))
            stream.send(frame({ type: 'keepalive', nonce: id, reply: true }))
          }
          break
        }
      }
    } catch {}
    this.i++
    await Promise.race([ended, sleep(100)])
    stream.abort(new Error('live fuzzer moves on'))
  }

  /** Opens RPC streams on one connection, holding them, until the daemon resets new ones; then lets them all go. */
  private async streamsUntilRefused (): Promise<void> {
    const held: Stream[] = []
    let refused = 0
    try {
      for (let k = 0; k < 200 && refused === 0 && !this.stopped; k++) {
        const s = await this.dial(RPC_PROTOCOL)
        s.addEventListener('close', evt => { if (evt.error !== undefined) refused++ })
        held.push(s)
        if (k % 16 === 15) await sleep(50)
      }
      await sleep(300)
    } finally {
      this.stats.streamsRefused += refused
      for (const s of held) s.abort(new Error('let go'))
    }
  }

  private async otherProtocols (): Promise<void> {
    const p = this.next(OTHER_PROTOCOLS)
    let stream: Stream
    try {
      stream = await this.dial(p)
    } catch (err) {
      // a protocol the daemon does not speak (an older meshsub) is refused by negotiation, not by a ban
      if ((err as Error).name === 'UnsupportedProtocolError') return
      throw err
    }
    this.stats.otherProtocolStreams++
    try {
      stream.send(this.next(this.garbage))
      if (this.i % 3 === 0) stream.send(new Uint8Array([...varint.encode(2 ** 30), 0]))
    } catch {}
    await sleep(100)
    stream.abort(new Error('live fuzzer moves on'))
  }

  private async gossipAttack (): Promise<void> {
    const topic = heartbeatTopic(this.target.cluster ?? 'grid')
    const kind = this.i++ % 3
    const data = kind === 0
      ? this.next(this.garbage)
      : kind === 1
        ? encode(Rogue.heartbeat({ id: this.target.id, inc: 2 ** 40 })) // in the daemon's name
        : encode({ t: 'notice', kind: 'dead', id: this.target.id, inc: 0, by: 'x'.repeat(200) })
    await this.rogue.publishRaw(topic, data)
    this.stats.gossip++
    await sleep(50)
  }

  /** One bad request on the control socket; counts the status it got (or 'none' when the socket was closed). */
  private async controlFlood (): Promise<void> {
    const k = this.i++ % 8
    const body = this.next(this.bodies)
    let raw: string | Uint8Array
    switch (k) {
      case 0: raw = request('POST', this.next(SAFE_POSTS), body); break
      case 1: raw = request('GET', this.next(GETS), ''); break
      case 2: raw = request(this.next(['PATCH', 'TRACE', 'DELETE', 'PUT', 'OPTIONS']), this.next(GETS), body); break
      case 3: raw = request('POST', '/v1/tasks', body.slice(0, Math.max(1, body.length >> 1)) + '\u0000'); break // not JSON
      case 4: raw = request('POST', this.next(SAFE_POSTS), body, body.length + 1000); break // cut short: claims more
      case 5: raw = this.next(this.garbage); break
      case 6: raw = `GET /v1/status HTTP/1.1\r\n${Array.from({ length: 200 }, (_, j) => `X-${j}: ${'v'.repeat(100)}`).join('\r\n')}\r\n\r\n`; break
      default: raw = request('POST', '/v1/sync/missing', 'x'.repeat(this.i % 40 === 7 ? 5 * 1024 * 1024 : 70_000)); break // over the body limit (rarely) or not JSON
    }
    const status = await sendRaw(this.target.socket, raw)
    this.stats.http++
    this.stats.httpStatus[status] = (this.stats.httpStatus[status] ?? 0) + 1
  }
}

function request (method: string, path: string, body: string, declared = Buffer.byteLength(body)): string {
  return `${method} ${path} HTTP/1.1\r\nHost: gridd\r\nContent-Type: application/json\r\nContent-Length: ${declared}\r\nConnection: close\r\n\r\n${body}`
}

/** Writes raw bytes to the control socket and reads the status of the answer (at most 5 s). */
async function sendRaw (socket: string, raw: string | Uint8Array): Promise<string> {
  return await new Promise(resolve => {
    const s = connect(socket)
    let head = ''
    const done = (status: string): void => { clearTimeout(timer); s.destroy(); resolve(status) }
    const timer = setTimeout(() => { done('timeout') }, 5_000)
    s.on('error', () => { done(head === '' ? 'none' : statusOf(head)) })
    s.on('data', d => { head += d.toString('latin1'); if (head.includes('\r\n')) done(statusOf(head)) })
    s.on('end', () => { done(head === '' ? 'none' : statusOf(head)) })
    s.on('connect', () => {
      s.write(raw)
      // a request cut short: stop writing (the server's request deadline ends it)
    })
  })
}

function statusOf (head: string): string {
  return /^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 'garbled'
}

async function sleep (ms: number): Promise<void> { await new Promise(resolve => setTimeout(resolve, ms)) }
