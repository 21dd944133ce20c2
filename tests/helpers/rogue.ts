/**
 * A misbehaving cluster member for tests: a real libp2p node built like gridd's (same swarm key, same protocols)
 * that publishes malformed gossip and writes garbage frames, to show a daemon drops them and runs on. It holds its
 * own key, so it can sign state records as itself (a member gone bad) but never as another writer.
 */
import { readFileSync } from 'node:fs'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey, Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
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

  private peerIdOf (peer: string): ReturnType<typeof this.node.getPeers>[number] {
    const p = this.node.getPeers().find(x => x.toString() === peer)
    if (p === undefined) throw new Error(`rogue is not connected to ${peer}`)
    return p
  }

  async stop (): Promise<void> {
    await this.node.stop()
  }
}

// the benchmarks read it from here
export { metricValue } from './metrics.ts'
