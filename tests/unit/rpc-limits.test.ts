import Type from 'typebox'
import * as varint from 'uint8-varint'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { RPC_PROTOCOL, RpcFrameDecoder, encodeRpcFrame, method, type Frame, type TaskEvent } from '../../proto/index.ts'
import { BusyError, errorFromWire } from '../../src/interface/index.ts'
import { followerWatcher } from '../../src/executor/index.ts'
import { waitFor } from '../helpers/cluster.ts'
import { MemoryNetwork, type MemoryNode } from './rpc-memory-network.ts'

const Text = Type.Object({ text: Type.String() })
const Echo = method('test.echo', Text, Text)
const Hang = method('test.hang', Text, Text)
const Slow = method('test.slow', Text, Text)

const fast = { timeoutMs: 3_000, intervalMs: 5 }

/** A length prefix declaring `length` bytes, and `body` bytes of that frame: a frame begun and not finished. */
function partialFrame (length: number, body: number): Uint8Array {
  const prefix = varint.encode(length)
  const out = new Uint8Array(prefix.byteLength + body)
  out.set(prefix, 0)
  return out
}

describe('mesh - rpc limits', () => {
  let net: MemoryNetwork
  let a: MemoryNode
  let b: MemoryNode

  beforeEach(async () => {
    net = new MemoryNetwork()
    a = await net.node()
    b = await net.node({ maxFrameBytes: 64 * 1024, partialFrameTimeoutMs: 300, maxServingPerPeer: 3, maxPartialBytesPerPeer: 80 * 1024 })
    b.rpc.handle(Echo, req => ({ text: req.text }))
    b.rpc.handle(Hang, async (_req, ctx) => await new Promise((_resolve, reject) => { ctx.signal.addEventListener('abort', () => { reject(ctx.signal.reason) }) }))
    b.rpc.handle(Slow, async (_req, ctx) => await new Promise((_resolve, reject) => { ctx.signal.addEventListener('abort', () => { reject(ctx.signal.reason) }) }), { maxInflightPerPeer: 1 })
  })

  afterEach(async () => { await net.stop() })

  it('resets a stream whose frame begun stays incomplete past the deadline, that stream only', async () => {
    const raw = await a.dialProtocol(b.peerId, RPC_PROTOCOL)
    const closed = new Promise<Error | undefined>(resolve => { raw.addEventListener('close', evt => { resolve(evt.error) }) })
    raw.send(partialFrame(10_000, 2_000))
    await closed
    expect(await b.metric('grid_mesh_rpc_invalid_frames_total')).toBe(1)
    expect(b.logs.some(l => String(l.err).includes('still incomplete'))).toBe(true)
    expect(await a.rpc.request(b.id, Echo, { text: 'fine' })).toEqual({ text: 'fine' })
  })

  it('keeps a stream whose frames each complete, however long the stream lasts', async () => {
    const raw = await a.dialProtocol(b.peerId, RPC_PROTOCOL)
    const dec = new RpcFrameDecoder(1 << 20)
    const frames: Frame[] = []
    raw.addEventListener('message', evt => { frames.push(...dec.push(evt.data)) })
    // each keepalive arrives in two pieces, the second 100 ms later: no frame stays incomplete for 300 ms
    for (let i = 0; i < 6; i++) {
      const bytes = encodeRpcFrame({ type: 'keepalive', nonce: i, reply: false }, 1 << 20)
      raw.send(bytes.subarray(0, 3))
      await new Promise(resolve => setTimeout(resolve, 100))
      raw.send(bytes.subarray(3))
    }
    await waitFor('six answers', () => frames.length === 6, fast)
    expect(raw.status).toBe('open')
    expect(await b.metric('grid_mesh_rpc_invalid_frames_total')).toBe(0)
  })

  it('resets a stream that takes the peer over its cap on incomplete frames, all its streams together', async () => {
    const one = await a.dialProtocol(b.peerId, RPC_PROTOCOL)
    const two = await a.dialProtocol(b.peerId, RPC_PROTOCOL)
    const closed = new Promise<void>(resolve => { two.addEventListener('close', () => { resolve() }) })
    one.send(partialFrame(60_000, 50_000))
    await new Promise(resolve => setTimeout(resolve, 20))
    two.send(partialFrame(60_000, 40_000)) // 90,000 bytes held for a, over its 80 KiB
    await closed
    expect(one.status).toBe('open')
    expect(b.logs.some(l => String(l.err).includes('across its streams'))).toBe(true)
  })

  it('refuses requests past the per-peer cap with BUSY, answered at once, and serves again once one ends', async () => {
    const ctrl = new AbortController()
    const hanging = [1, 2, 3].map(() => a.rpc.request(b.id, Hang, { text: '' }, { signal: ctrl.signal, timeoutMs: 10_000 }).catch(() => {}))
    await waitFor('three served', async () => (b.rpc as unknown as { servingNow: Map<string, { all: number }> }).servingNow.get(a.id)?.all === 3, fast)
    const err = await a.rpc.request(b.id, Echo, { text: 'more' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(BusyError)
    expect(err).toMatchObject({ code: 'BUSY', details: { retryAfterMs: 1_000 } })
    expect(await b.metric('grid_mesh_rpc_refusals_total', { reason: 'busy' })).toBe(1)
    ctrl.abort()
    await Promise.all(hanging)
    await waitFor('the slots to be given back', async () => await a.rpc.request(b.id, Echo, { text: 'again' }).then(() => true, () => false), fast)
  })

  it('applies a method\'s own cap per peer', async () => {
    const ctrl = new AbortController()
    const first = a.rpc.request(b.id, Slow, { text: '' }, { signal: ctrl.signal, timeoutMs: 10_000 }).catch(() => {})
    await waitFor('one served', async () => (b.rpc as unknown as { servingNow: Map<string, { all: number }> }).servingNow.get(a.id)?.all === 1, fast)
    expect(await a.rpc.request(b.id, Slow, { text: '' }).catch((e: unknown) => e)).toBeInstanceOf(BusyError)
    // other methods are not held back by it
    expect(await a.rpc.request(b.id, Echo, { text: 'other' })).toEqual({ text: 'other' })
    ctrl.abort()
    await first
  })

  it('a BUSY error keeps its class across the wire', () => {
    expect(errorFromWire({ code: 'BUSY', message: 'x' })).toBeInstanceOf(BusyError)
  })
})

describe('executor - follower watcher', () => {
  const out = (n: number): TaskEvent => ({ k: 'out', s: 1, d: new Uint8Array(n), o: 0 })

  it('skips output while its sink is full and says how much with one gap once it drains', async () => {
    const sent: TaskEvent[] = []
    let full = false
    let drained: () => void = () => {}
    const w = followerWatcher({
      send: ev => { sent.push(ev); return !full },
      drain: async () => { await new Promise<void>(resolve => { drained = resolve }) }
    }, () => {})
    expect(w.event(out(10))).toBe(true)
    full = true
    expect(w.event(out(20))).toBe(true) // taken, and the sink is now full
    for (let i = 0; i < 100; i++) expect(w.event(out(1000))).toBe(true)
    expect(w.event({ k: 'started', at: 1, pid: 2, gpus: [] })).toBe(true)
    expect(sent.map(e => e.k)).toEqual(['out', 'out', 'started'])
    full = false
    drained()
    await waitFor('the gap', () => sent.some(e => e.k === 'gap'), fast)
    expect(sent.at(-1)).toEqual({ k: 'gap', bytes: 100_000 })
    w.event(out(5))
    expect(sent.at(-1)).toMatchObject({ k: 'out' })
  })
})

describe('mesh - rpc limits, node-wide', () => {
  it('resets a large incomplete frame that takes the node over its cap for all peers, and lets small frames pass', async () => {
    const net = new MemoryNetwork()
    try {
      const server = await net.node({ maxFrameBytes: 4 * 1024 * 1024, maxPartialBytesTotal: 3 * 1024 * 1024 })
      server.rpc.handle(Echo, req => ({ text: req.text }))
      const peers = await Promise.all([1, 2, 3].map(async () => await net.node()))
      const [p1, p2, p3] = peers as [MemoryNode, MemoryNode, MemoryNode]
      const s1 = await p1.dialProtocol(server.peerId, RPC_PROTOCOL)
      s1.send(partialFrame(3_000_000, 2_000_000))
      await new Promise(resolve => setTimeout(resolve, 20))
      const s2 = await p2.dialProtocol(server.peerId, RPC_PROTOCOL)
      const closed = new Promise<void>(resolve => { s2.addEventListener('close', () => { resolve() }) })
      s2.send(partialFrame(3_000_000, 1_500_000)) // 3.5 MB held in all, over 3 MiB
      await closed
      expect(s1.status).toBe('open')
      expect(server.logs.some(l => String(l.err).includes('from all peers'))).toBe(true)
      // a small request from a third peer is served meanwhile
      expect(await p3.rpc.request(server.id, Echo, { text: 'small' })).toEqual({ text: 'small' })
    } finally {
      await net.stop()
    }
  })
})
