/**
 * A misbehaving cluster member for tests: a real libp2p node built like gridd's (same swarm key, same protocols)
 * that publishes malformed gossip and writes garbage frames, to show a daemon drops them and runs on. It holds its
 * own key, so it can sign state records as itself (a member gone bad) but never as another writer.
 */
import { readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey, Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import * as varint from 'uint8-varint'
import * as Y from 'yjs'
import { RPC_PROTOCOL, RpcFrameDecoder, encode, encodeRpcFrame, parseSwarmKey, type Frame } from '../../proto/index.ts'
import { createMeshNode, type MeshLibp2p } from '../../src/mesh/node.ts'
import { Ed25519RecordSigner } from '../../src/state/index.ts'

export class Rogue {
  private readonly signer: Ed25519RecordSigner
  /** the next sequence number of the rogue's own records, in RECORD_GEN */
  private seq = 0
  /** the generation of the rogue's own document (numbered by the clock, as a daemon's first one) */
  readonly gen = Date.now()

  private constructor (readonly node: MeshLibp2p, key: PrivateKey) {
    this.signer = new Ed25519RecordSigner(key)
  }

  get id (): string { return this.node.peerId.toString() }

  /** Where other rogues dial this one (a second identity relayed through the first). */
  get addrs (): string[] { return this.node.getMultiaddrs().map(a => a.toString()) }

  /** A well-formed heartbeat (signed by this rogue when published), about whoever `fields.id` names. */
  static heartbeat (fields: { id: string, name?: string, inc: number, seq?: number, state?: string }): Record<string, unknown> {
    const load = { cpu: 0, cpus: 1, memTotalMiB: 1, memFreeMiB: 1, running: 0, queued: 0, slots: 1, freeSlots: 1, gpus: 0, freeGpus: 0, gpuUtilizationPercent: 0, gpuMemoryUsedMiB: 0, gpuMemoryTotalMiB: 0 }
    return { t: 'hb', name: 'rogue', seq: 1, state: 'alive', load, ver: 'rogue', ts: Date.now(), ...fields }
  }

  static async start (swarmKeyPath: string): Promise<Rogue> {
    const { psk } = parseSwarmKey(readFileSync(swarmKeyPath), swarmKeyPath)
    const key = await generateKeyPair('Ed25519')
    const node = await createMeshNode({
      privateKey: key,
      psk,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      announce: [],
      maxConnections: 20,
      version: 'rogue',
      onUpgradeFailure: () => {}
    })
    await node.start()
    return new Rogue(node, key)
  }

  async connect (addr: string): Promise<void> {
    await this.node.dial(multiaddr(addr))
  }

  subscribe (topic: string): void {
    this.node.services.pubsub.subscribe(topic)
  }

  /** Waits until some peer of ours is subscribed to the topic (gossip would otherwise go nowhere). */
  hasTopicPeers (topic: string): boolean {
    return this.node.services.pubsub.getSubscribers(topic).length > 0
  }

  async publishRaw (topic: string, data: Uint8Array): Promise<void> {
    await this.node.services.pubsub.publish(topic, data)
  }

  async publish (topic: string, value: unknown): Promise<void> {
    await this.publishRaw(topic, encode(value))
  }

  /** Publishes many messages, a batch at a time (each signed by this rogue). */
  async flood (topic: string, values: unknown[], batch = 500): Promise<void> {
    for (let i = 0; i < values.length; i += batch) {
      await Promise.all(values.slice(i, i + batch).map(async v => { await this.publish(topic, v) }))
    }
  }

  /** Opens an RPC stream to a peer and writes raw bytes; resolves with how the stream ended. */
  async rpcGarbage (peer: string, bytes: Uint8Array): Promise<string> {
    const stream = await this.node.dialProtocol(this.peerIdOf(peer), RPC_PROTOCOL)
    return await new Promise(resolve => {
      stream.addEventListener('close', evt => { resolve(evt.error === undefined ? 'closed' : `reset: ${evt.error.message}`) })
      stream.send(bytes)
      setTimeout(() => { resolve(`still ${stream.status}`) }, 5_000)
    })
  }

  /** Sends one-way notification frames on an RPC stream (as state pushes travel), then closes it. */
  async rpcNotify (peer: string, m: string, items: unknown[]): Promise<void> {
    const stream = await this.node.dialProtocol(this.peerIdOf(peer), RPC_PROTOCOL)
    for (const data of items) stream.send(encodeRpcFrame({ type: 'notify', method: m, data }, 1 << 24))
    await new Promise(resolve => setTimeout(resolve, 200))
    await stream.close().catch(() => {})
  }

  /** A state record signed with the rogue's key: as itself by default; as any `w` (a forgery no node may take). */
  signed (u: Uint8Array, opts: { w?: string, g?: number, n?: number } = {}): { w: string, g: number, n: number, u: Uint8Array, s: Uint8Array } {
    const w = opts.w ?? this.id
    const g = opts.g ?? this.gen
    const n = opts.n ?? this.seq++
    return { w, g, n, u, s: this.signer.sign(w, g, n, u) }
  }

  /** A Yjs update of one entry, stamped `stampMs` (now by default), named or in the previous release's form. */
  static entryUpdate (collection: string, key: string, value: unknown, opts: { legacy?: boolean, stampMs?: number } = {}): Uint8Array {
    const doc = new Y.Doc()
    const stamp = [opts.stampMs ?? Date.now(), 0]
    doc.getMap(collection).set(key, opts.legacy === true ? { v: value, h: stamp } : { value, stamp })
    return Y.encodeStateAsUpdate(doc)
  }

  /**
   * Pushes one entry of the rogue's own document, signed (as its writer), stamped now or `stampMs`: in the named
   * form, or `legacy` in the previous release's one-letter form (`{v, h}`).
   */
  async pushOwnEntry (peer: string, collection: string, key: string, value: unknown, opts: { legacy?: boolean, stampMs?: number } = {}): Promise<void> {
    await this.rpcNotify(peer, 'state.push', [this.signed(Rogue.entryUpdate(collection, key, value, opts))])
  }

  /** Sends one RPC request frame and returns the first frame that comes back. */
  async rpcRequest (peer: string, m: string, d: unknown): Promise<Frame> {
    const stream: Stream = await this.node.dialProtocol(this.peerIdOf(peer), RPC_PROTOCOL)
    const dec = new RpcFrameDecoder(1 << 24)
    return await new Promise((resolve, reject) => {
      stream.addEventListener('message', evt => {
        for (const f of dec.push(evt.data)) { resolve(f); return }
      })
      stream.addEventListener('close', evt => { reject(evt.error ?? new Error('closed')) })
      stream.send(encodeRpcFrame({ type: 'request', id: 1, method: m, data: d, deadlineMs: 5000 }, 1 << 24))
    })
  }

  /** Sends `count` requests at once on one RPC stream; resolves with how many came back as results and as each error code. */
  async rpcFlood (peer: string, m: string, d: unknown, count: number, timeoutMs = 60_000): Promise<Record<string, number>> {
    const stream: Stream = await this.node.dialProtocol(this.peerIdOf(peer), RPC_PROTOCOL)
    const dec = new RpcFrameDecoder(1 << 25)
    const tally: Record<string, number> = {}
    let answered = 0
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`${answered} of ${count} answered: ${JSON.stringify(tally)}`)) }, timeoutMs)
      stream.addEventListener('message', evt => {
        for (const f of dec.push(evt.data)) {
          const k = f.type === 'result' ? 'result' : f.type === 'error' ? f.error.code : f.type
          tally[k] = (tally[k] ?? 0) + 1
          if (f.type === 'result' || f.type === 'error') answered++
          if (answered === count) { clearTimeout(timer); resolve(tally); void stream.close().catch(() => {}) }
        }
      })
      stream.addEventListener('close', evt => { clearTimeout(timer); reject(evt.error ?? new Error(`closed after ${answered} answers`)) })
      for (let id = 1; id <= count; id++) stream.send(encodeRpcFrame({ type: 'request', id, method: m, data: d, deadlineMs: timeoutMs }, 1 << 24))
    })
  }

  /** Answers every RPC request on the given method with `answer` (a peer that lies in catch-up). */
  async answerRpc (m: string, answer: unknown): Promise<void> {
    await this.node.handle(RPC_PROTOCOL, stream => {
      const dec = new RpcFrameDecoder(1 << 24)
      stream.addEventListener('message', evt => {
        for (const f of dec.push(evt.data)) {
          if (f.type !== 'request') continue
          stream.send(encodeRpcFrame(f.method === m
            ? { type: 'result', id: f.id, data: answer }
            : { type: 'error', id: f.id, error: { code: 'NOT_FOUND', message: 'no' } }, 1 << 24))
        }
      })
    }, { force: true })
  }

  /**
   * Holds `streams` RPC streams to a peer, each with a frame begun that declares `declared` bytes and brings all but
   * the last of them, and opens a fresh one whenever one is reset (a sustained attack), until `stop`. `resets` counts
   * the streams the peer reset.
   */
  holdPartialFrames (peer: string, opts: { streams: number, declared: number }): { resets: () => number, stop: () => void } {
    const id = this.peerIdOf(peer)
    const prefix = varint.encode(opts.declared)
    const body = new Uint8Array(opts.declared - 1)
    const open = new Set<Stream>()
    let stopped = false
    let resets = 0
    const one = async (): Promise<void> => {
      if (stopped) return
      let stream: Stream
      try {
        stream = await this.node.dialProtocol(id, RPC_PROTOCOL)
      } catch {
        setTimeout(() => { void one() }, 200)
        return
      }
      // stopped while this stream was opening: stop() did not see it, and a 16 MiB send on it after the test moved on
      // ends with the connection's reset, which can surface in the next test
      if (stopped) { stream.abort(new Error('rogue stops')); return }
      open.add(stream)
      stream.addEventListener('close', () => {
        open.delete(stream)
        resets++
        if (!stopped) setTimeout(() => { void one() }, 100)
      })
      try { stream.send(prefix); stream.send(body) } catch {}
    }
    for (let i = 0; i < opts.streams; i++) void one()
    return {
      resets: () => resets,
      stop: () => { stopped = true; for (const s of open) s.abort(new Error('rogue stops')) }
    }
  }

  /** Asks a peer to follow a task's output (task.logs, follow) and never reads what comes back. */
  async followLogsWithoutReading (peer: string, taskId: string): Promise<Stream> {
    const stream = await this.node.dialProtocol(this.peerIdOf(peer), RPC_PROTOCOL)
    stream.send(encodeRpcFrame({ type: 'request', id: 1, method: 'task.logs', data: { id: taskId, follow: true }, deadlineMs: 2_147_483_647 }, 1 << 24))
    // no more window updates: the peer's sends to us stop at its window, the rest is its to hold
    stream.pause()
    return stream
  }

  private peerIdOf (peer: string): ReturnType<typeof this.node.getPeers>[number] {
    const p = this.node.getPeers().find(x => x.toString() === peer)
    if (p === undefined) throw new Error(`rogue is not connected to ${peer}`)
    return p
  }

  async stop (): Promise<void> {
    await this.node.stop()
  }
}

/**
 * A client without the swarm key: `count` plain TCP connections to a port that send nothing, each opened again
 * `reopenMs` after the server closes it (a sustained hold), until `stop`.
 */
export function holdIdleSockets (port: number, count: number, reopenMs = 2_000): { open: () => number, closed: () => number, stop: () => void } {
  const sockets = new Set<Socket>()
  let stopped = false
  let closed = 0
  const one = (): void => {
    if (stopped) return
    const s = connect({ host: '127.0.0.1', port })
    sockets.add(s)
    s.on('error', () => {})
    s.on('close', () => {
      sockets.delete(s)
      closed++
      if (!stopped) setTimeout(one, reopenMs)
    })
  }
  for (let i = 0; i < count; i++) one()
  return {
    open: () => sockets.size,
    closed: () => closed,
    stop: () => { stopped = true; for (const s of sockets) s.destroy() }
  }
}

// the benchmarks read it from here
export { metricValue } from './metrics.ts'
