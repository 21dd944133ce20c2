import Type from 'typebox'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { RPC_PROTOCOL, encodeRpcFrame, method, RpcFrameDecoder, type Frame } from '../../proto/index.ts'
import {
  CancelledError, NotFoundError, PeerUnreachableError, TimeoutError, TooLargeError
} from '../../src/interface/index.ts'
import { waitFor } from '../helpers/cluster.ts'
import { MemoryNetwork, type MemoryNode } from './rpc-memory-network.ts'

const Text = Type.Object({ text: Type.String() })
const Echo = method('test.echo', Text, Text)
const Fail = method('test.fail', Text, Text)
const Hang = method('test.hang', Text, Text)
const Big = method('test.big', Type.Object({ bytes: Type.Integer() }), Text)
const Count = method('test.count', Type.Object({ n: Type.Integer() }), Type.Object({ sent: Type.Integer() }), Type.Object({ i: Type.Integer() }))
const Note = method('test.note', Text, Type.Null())

const fast = { timeoutMs: 2_000, intervalMs: 5 }

describe('mesh - rpc channel', () => {
  let net: MemoryNetwork
  let a: MemoryNode
  let b: MemoryNode
  /** What test.hang handlers saw: how many started, and each one's signal. */
  let hung: AbortSignal[]

  beforeEach(async () => {
    net = new MemoryNetwork()
    a = await net.node({ maxFrameBytes: 64 * 1024 })
    b = await net.node({ maxFrameBytes: 4 * 1024 })
    hung = []
    for (const n of [a, b]) {
      n.rpc.handle(Echo, req => ({ text: `${req.text} from ${n.id.slice(-4)}` }))
      n.rpc.handle(Fail, req => { throw new NotFoundError(`no ${req.text} here`, { details: { what: req.text } }) })
      n.rpc.handle(Hang, async (_req, ctx) => {
        hung.push(ctx.signal)
        return await new Promise((_resolve, reject) => { ctx.signal.addEventListener('abort', () => { reject(ctx.signal.reason) }) })
      })
      n.rpc.handle(Big, req => ({ text: 'x'.repeat(req.bytes) }))
      n.rpc.handle(Count, async (req, ctx) => {
        let full = 0
        for (let i = 0; i < req.n; i++) {
          if (!ctx.emit({ i })) { full++; await ctx.drain() }
        }
        return { sent: full }
      })
    }
  })

  afterEach(async () => { await net.stop() })

  it('answers a request, either way, on one stream per direction', async () => {
    expect(await a.rpc.request(b.id, Echo, { text: 'hi' })).toEqual({ text: `hi from ${b.id.slice(-4)}` })
    expect(await a.rpc.request(b.id, Echo, { text: 'again' })).toEqual({ text: `again from ${b.id.slice(-4)}` })
    expect(await b.rpc.request(a.id, Echo, { text: 'back' })).toEqual({ text: `back from ${a.id.slice(-4)}` })
    expect(a.dials).toBe(1)
    expect(b.dials).toBe(1)
    expect(await a.metric('grid_mesh_rpc_requests_total', { method: 'test.echo', outcome: 'ok' })).toBe(2)
    expect(await b.metric('grid_mesh_rpc_served_total', { method: 'test.echo', outcome: 'ok' })).toBe(2)
  })

  it('delivers an error answered with a code as that code\'s class, with its message and details', async () => {
    const err = await a.rpc.request(b.id, Fail, { text: 'task' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(NotFoundError)
    expect(err).toMatchObject({ code: 'NOT_FOUND', name: 'NotFoundError', message: 'no task here', details: { what: 'task' } })
    expect(await a.metric('grid_mesh_rpc_requests_total', { method: 'test.fail', outcome: 'NOT_FOUND' })).toBe(1)
    const unknown = await a.rpc.request(b.id, method('no.such', Text, Text), { text: '' }).catch((e: unknown) => e)
    expect(unknown).toBeInstanceOf(NotFoundError)
    expect((unknown as Error).message).toBe('unknown method no.such')
  })

  it('fails a request past its deadline with TimeoutError, and tells the server to stop', async () => {
    const started = performance.now()
    const err = await a.rpc.request(b.id, Hang, { text: '' }, { timeoutMs: 100 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TimeoutError)
    expect(performance.now() - started).toBeLessThan(1_000)
    const signal = await waitFor('the handler to be cancelled', () => hung[0]?.aborted === true ? hung[0] : undefined, fast)
    // the server holds the same deadline: its own timer or the caller's cancel, whichever comes first, stops it
    expect(signal.reason instanceof CancelledError || (signal.reason as Error).name === 'TimeoutError').toBe(true)
  })

  it('cancels a request whose caller aborts it', async () => {
    const ctrl = new AbortController()
    const p = a.rpc.request(b.id, Hang, { text: '' }, { signal: ctrl.signal }).catch((e: unknown) => e)
    await waitFor('the handler to start', () => hung.length === 1, fast)
    ctrl.abort()
    expect(await p).toBeInstanceOf(CancelledError)
    await waitFor('the handler to be cancelled', () => hung[0]?.aborted, fast)
  })

  it('streams a handler\'s events, in order, before its answer, waiting on back-pressure', async () => {
    const seen: number[] = []
    // enough events to fill what a turn of the event loop gathers (RPC_WRITE_COALESCE_MAX_BYTES) several times
    const res = await a.rpc.request(b.id, Count, { n: 20_000 }, { onEvent: e => { seen.push(e.i) } })
    expect(seen).toEqual(Array.from({ length: 20_000 }, (_, i) => i))
    // the handler met a full buffer and waited for it to drain
    expect(res.sent).toBeGreaterThan(0)
  })

  it('refuses a request too large to send with TOO_LARGE, sending nothing', async () => {
    const err = await b.rpc.request(a.id, Echo, { text: 'y'.repeat(5_000) }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TooLargeError)
    expect(err).toMatchObject({ code: 'TOO_LARGE' })
    expect(await a.metric('grid_mesh_rpc_served_total')).toBe(0)
  })

  it('answers TOO_LARGE when the answer is over the server\'s limit', async () => {
    const err = await a.rpc.request(b.id, Big, { bytes: 5_000 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TooLargeError)
    expect((err as Error).message).toMatch(/over the 4096-byte limit/)
    expect(await a.rpc.request(b.id, Echo, { text: 'still' })).toEqual({ text: `still from ${b.id.slice(-4)}` })
  })

  it('resets a stream that brings a frame over the limit, failing its requests at once', async () => {
    const started = performance.now()
    const err = await a.rpc.request(b.id, Echo, { text: 'z'.repeat(5_000) }, { timeoutMs: 10_000 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PeerUnreachableError)
    expect(performance.now() - started).toBeLessThan(2_000)
    expect(await b.metric('grid_mesh_rpc_invalid_frames_total')).toBe(1)
    expect(b.logs.filter(l => l.msg.startsWith('malformed frame from peer'))).toHaveLength(1)
  })

  it('fails in-flight requests at once when the peer closes the stream', async () => {
    const started = performance.now()
    const p = a.rpc.request(b.id, Hang, { text: '' }, { timeoutMs: 10_000 }).catch((e: unknown) => e)
    await waitFor('the handler to start', () => hung.length === 1, fast)
    await b.inbound[0]?.close()
    const err = await p
    expect(err).toBeInstanceOf(PeerUnreachableError)
    expect((err as Error).message).toMatch(/closed the stream before answering/)
    expect(performance.now() - started).toBeLessThan(2_000)
    // the half-closed stream is not picked again: the next request opens a fresh one
    expect(await a.rpc.request(b.id, Echo, { text: 'fresh' })).toEqual({ text: `fresh from ${b.id.slice(-4)}` })
    expect(a.dials).toBe(2)
  })

  it('fails in-flight requests at once when the peer resets the stream', async () => {
    const p = a.rpc.request(b.id, Hang, { text: '' }, { timeoutMs: 10_000 }).catch((e: unknown) => e)
    await waitFor('the handler to start', () => hung.length === 1, fast)
    b.inbound[0]?.abort(new Error('gone'))
    expect(await p).toBeInstanceOf(PeerUnreachableError)
    // it had left: it is not sent again
    expect(hung).toHaveLength(1)
    expect(a.dials).toBe(1)
  })

  it('sends a request that never left once more, on a fresh stream', async () => {
    // the first stream dies under the first write
    a.onOutbound = s => {
      a.onOutbound = undefined
      s.send = () => { s.abort(new Error('connection lost')); throw new Error('stream is closed') }
    }
    expect(await a.rpc.request(b.id, Echo, { text: 'retry' })).toEqual({ text: `retry from ${b.id.slice(-4)}` })
    expect(a.dials).toBe(2)
    expect(await b.metric('grid_mesh_rpc_served_total', { method: 'test.echo' })).toBe(1)
  })

  it('sends it once more only', async () => {
    a.onOutbound = s => { s.send = () => { s.abort(new Error('connection lost')); throw new Error('stream is closed') } }
    const err = await a.rpc.request(b.id, Echo, { text: 'retry' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PeerUnreachableError)
    expect(a.dials).toBe(2)
  })

  it('delivers notifications on an open stream, and drops invalid ones', async () => {
    const got: Array<[string, string]> = []
    b.rpc.onNotify(Note, (data, peer) => { got.push([data.text, peer]) })
    expect(a.rpc.notify(b.id, Note, { text: 'no stream yet' })).toBe(false)
    await a.rpc.ensureChannel(b.id)
    expect(a.rpc.notify(b.id, Note, { text: 'one' })).toBe(true)
    expect(a.rpc.notify(b.id, Note, { nope: 1 } as unknown as { text: string })).toBe(true)
    await waitFor('the notification', () => got.length === 1, fast)
    expect(got).toEqual([['one', a.id]])
    await waitFor('the invalid one to be counted', async () => await b.metric('grid_mesh_rpc_invalid_frames_total') === 1, fast)
  })

  it('sends what is written in one turn of the event loop as one write to the stream, in order', async () => {
    let writes = 0
    a.onOutbound = s => {
      const send = s.send.bind(s)
      s.send = data => { writes++; return send(data) }
    }
    const got: string[] = []
    b.rpc.onNotify(Note, data => { got.push(data.text) })
    await a.rpc.ensureChannel(b.id)
    const answers = Array.from({ length: 10 }, async (_, i) => await a.rpc.request(b.id, Echo, { text: `r${i}` }))
    for (let i = 0; i < 40; i++) expect(a.rpc.notify(b.id, Note, { text: `n${i}` })).toBe(true)
    expect(writes).toBe(0)
    expect((await Promise.all(answers)).map(r => r.text)).toEqual(Array.from({ length: 10 }, (_, i) => `r${i} from ${b.id.slice(-4)}`))
    await waitFor('the notifications', () => got.length === 40, fast)
    expect(got).toEqual(Array.from({ length: 40 }, (_, i) => `n${i}`))
    expect(writes).toBe(1)
  })

  it('answers keepalives and resets a stream of garbage, that stream only', async () => {
    const raw = await a.dialProtocol(b.peerId, RPC_PROTOCOL)
    const dec = new RpcFrameDecoder(1 << 20)
    const frames: Frame[] = []
    raw.addEventListener('message', evt => { frames.push(...dec.push(evt.data)) })
    raw.send(encodeRpcFrame({ type: 'keepalive', nonce: 42, reply: false }, 1 << 20))
    await waitFor('the keepalive answer', () => frames.length === 1, fast)
    expect(frames[0]).toEqual({ type: 'keepalive', nonce: 42, reply: true })
    const closed = new Promise(resolve => { raw.addEventListener('close', resolve) })
    raw.send(new Uint8Array([3, 0x92, 0x09, 0x01])) // a frame tag nobody knows
    await closed
    expect(await b.metric('grid_mesh_rpc_invalid_frames_total')).toBe(1)
    expect(await a.rpc.request(b.id, Echo, { text: 'fine' })).toEqual({ text: `fine from ${b.id.slice(-4)}` })
  })

  it('says in one log line that a peer speaks another RPC version, naming both', async () => {
    const old = await net.node()
    await old.rpc.stop()
    old.handlers.set('/grid/rpc/1.0.0', () => {}) // a gridd of the previous version
    for (let i = 0; i < 3; i++) {
      const err = await a.rpc.request(old.id, Echo, { text: 'hi' }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(PeerUnreachableError)
      expect((err as Error).message).toBe(`${old.id} does not speak ${RPC_PROTOCOL}`)
    }
    const line = await waitFor('the log line', () => a.logs.find(l => l.msg.startsWith('peer speaks another RPC protocol version')), fast)
    expect(line).toMatchObject({ level: 40, peer: old.id, ours: '/grid/rpc/2.0.0', theirs: '/grid/rpc/1.0.0' })
    expect(a.logs.filter(l => l.level >= 40)).toHaveLength(1)
    expect(JSON.stringify(line)).not.toMatch(/stack|at .*\.ts/)
  })

  it('says so too of a peer that speaks no version of it', async () => {
    const other = await net.node()
    await other.rpc.stop()
    await a.rpc.request(other.id, Echo, { text: 'hi' }).catch(() => {})
    const line = await waitFor('the log line', () => a.logs.find(l => l.level === 40), { timeoutMs: 5_000, intervalMs: 20 })
    expect(line).toMatchObject({ msg: expect.stringMatching(/does not speak the RPC protocol/), ours: RPC_PROTOCOL, theirs: 'none' })
  })
})
