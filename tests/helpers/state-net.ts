/**
 * An in-memory network for state store tests: which nodes are connected, and the RPC between them (requests answered
 * by the other node's handler, notifications delivered on the next turn of the event loop).
 */
import { EventEmitter } from 'node:events'
import type { MethodDef } from '../../proto/index.ts'
import { UnavailableError, type NodeId } from '../../src/interface/index.ts'
import type { StateMesh, StateRpc } from '../../src/state/index.ts'

export type Handler = (req: unknown, ctx: { peer: NodeId }) => unknown
export type NotifyHandler = (data: unknown, peer: NodeId) => void

/** An in-memory network: which nodes are connected, and the RPC between them. */
export class StubNet {
  readonly meshes = new Map<NodeId, StubMesh>()
  private readonly links = new Set<string>()

  mesh (id: NodeId): StubMesh {
    const m = new StubMesh(id, this)
    this.meshes.set(id, m)
    return m
  }

  connect (a: NodeId, b: NodeId): void {
    this.links.add([a, b].sort().join('|'))
    this.meshes.get(a)?.emit('peer:connect', b)
    this.meshes.get(b)?.emit('peer:connect', a)
  }

  connected (a: NodeId, b: NodeId): boolean {
    return this.links.has([a, b].sort().join('|'))
  }

  peersOf (id: NodeId): NodeId[] {
    return [...this.meshes.keys()].filter(p => p !== id && this.connected(id, p))
  }
}

export class StubMesh extends EventEmitter<{ 'peer:connect': [NodeId] }> implements StateMesh {
  readonly handlers = new Map<string, Handler>()
  readonly notifyHandlers = new Map<string, NotifyHandler>()
  /** Peers whose stream from this node is full: notifications to them are not sent. */
  readonly full = new Set<NodeId>()
  readonly rpc: StateRpc

  constructor (readonly peerId: NodeId, private readonly net: StubNet) {
    super()
    const target = (peer: NodeId): StubMesh => {
      const m = net.meshes.get(peer)
      if (m === undefined || !net.connected(peerId, peer)) throw new UnavailableError(`${peer} is not connected`)
      return m
    }
    this.rpc = {
      handle: (method, fn) => { this.handlers.set(method.name, fn as Handler) },
      onNotify: (method, fn) => { this.notifyHandlers.set(method.name, fn as NotifyHandler) },
      notify: (peer, method, data) => {
        if (!net.connected(peerId, peer) || this.full.has(peer)) return false
        const copy = structuredClone(data)
        setImmediate(() => { target(peer).deliver(method, copy, peerId) })
        return true
      },
      request: async (peer, method, data) => {
        const handler = target(peer).handlers.get(method.name)
        if (handler === undefined) throw new UnavailableError(`${peer} does not serve ${method.name}`)
        await new Promise(resolve => setImmediate(resolve))
        return structuredClone(await handler(structuredClone(data), { peer: peerId })) as never
      },
      hasChannel: peer => net.connected(peerId, peer) && !this.full.has(peer),
      ensureChannel: async () => {}
    }
  }

  connections (): NodeId[] {
    return this.net.peersOf(this.peerId)
  }

  /** A notification arrives from `from` (the stub's stand-in for an authenticated stream). */
  deliver (method: MethodDef, data: unknown, from: NodeId): void {
    this.notifyHandlers.get(method.name)?.(data, from)
  }
}

