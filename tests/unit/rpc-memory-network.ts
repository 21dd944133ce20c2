/**
 * RPC services wired to each other by in-memory streams (libp2p's own `streamPair`: real streams with back-pressure,
 * half-close and reset, over no sockets): the `RpcNetwork` seam that a libp2p node fills in gridd.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { UnsupportedProtocolError, type PeerId, type Stream } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { streamPair } from '@libp2p/utils'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { RpcService, type RpcInit, type RpcNetwork } from '../../src/mesh/index.ts'

type Handler = Parameters<RpcNetwork['handle']>[1]

export interface LogLine { level: number, msg: string, [key: string]: unknown }

export class MemoryNode implements RpcNetwork {
  readonly handlers = new Map<string, Handler>()
  /** Streams this node opened, and streams opened to it, in order. */
  readonly outbound: Stream[] = []
  readonly inbound: Stream[] = []
  readonly logs: LogLine[] = []
  /** The strikes the service reported against peers (misbehaved), as `peer reason`. */
  readonly strikes: string[] = []
  readonly registry = new Registry()
  readonly rpc: RpcService
  dials = 0
  /** Called on every stream this node opens, before the service sees it (to break it on purpose). */
  onOutbound?: (stream: Stream) => void

  constructor (readonly peerId: PeerId, private readonly net: MemoryNetwork, init: RpcInit) {
    const logger = pino({ level: 'debug' }, { write: (line: string) => { this.logs.push(JSON.parse(line) as LogLine) } })
    this.rpc = new RpcService({ libp2p: this, logger, registry: this.registry, misbehaved: (p, r) => { this.strikes.push(`${p} ${r}`) } }, init)
  }

  get id (): string { return this.peerId.toString() }

  /** What identify would tell a peer: the protocols this node handles. */
  readonly peerStore = {
    get: async (peer: PeerId): Promise<{ protocols: string[] }> => ({ protocols: [...(this.net.get(peer.toString())?.handlers.keys() ?? [])] })
  }

  async handle (protocol: string, handler: Handler): Promise<void> { this.handlers.set(protocol, handler) }

  async unhandle (protocol: string): Promise<void> { this.handlers.delete(protocol) }

  async dialProtocol (peer: PeerId, protocol: string): Promise<Stream> {
    this.dials++
    const remote = this.net.get(peer.toString())
    if (remote === undefined) throw new Error(`no route to ${peer.toString()}`)
    const handler = remote.handlers.get(protocol)
    if (handler === undefined) throw new UnsupportedProtocolError(`Protocol selection failed - could not negotiate ${protocol}`)
    const [out, inb] = await streamPair({ protocol })
    remote.inbound.push(inb)
    handler(inb, { remotePeer: this.peerId })
    this.outbound.push(out)
    this.onOutbound?.(out)
    return out
  }

  async metric (name: string, labels: Record<string, string> = {}): Promise<number> {
    const m = (await this.registry.getMetricsAsJSON()).find(x => x.name === name)
    return (m?.values ?? []).filter(v => Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((a, v) => a + v.value, 0)
  }
}

export class MemoryNetwork {
  private readonly nodes = new Map<string, MemoryNode>()

  async node (init: RpcInit = {}): Promise<MemoryNode> {
    const n = new MemoryNode(peerIdFromPrivateKey(await generateKeyPair('Ed25519')), this, init)
    this.nodes.set(n.id, n)
    await n.rpc.start()
    return n
  }

  get (id: string): MemoryNode | undefined { return this.nodes.get(id) }

  async stop (): Promise<void> {
    for (const n of this.nodes.values()) await n.rpc.stop()
  }
}
