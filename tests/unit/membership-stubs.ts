/**
 * Stubs for membership's unit tests: a mesh with no network (gossip delivered by hand, RPC answered by the test), a
 * fixed event-loop lag, a logger that keeps its lines, and a clock helper for vitest's fake timers.
 */
import { EventEmitter } from 'node:events'
import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'
import { vi } from 'vitest'
import { decode, encode, type MembershipMessage, type MethodDef, type RequestOf, type ResponseOf } from '../../proto/index.ts'
import { TimeoutError, type LoadReport, type NodeId } from '../../src/interface/index.ts'
import type { GossipHandler, GossipSource, GossipValidator, GossipVerdict } from '../../src/mesh/index.ts'
import type { LagSampler, MembershipMesh, MembershipMeshEvents, MembershipRpc } from '../../src/membership/index.ts'

export const LOAD: LoadReport = { cpu: 0, cpus: 2, memTotalMiB: 1000, memFreeMiB: 500, running: 0, queued: 0, slots: 2, freeSlots: 2, gpus: 0, freeGpus: 0, gpuUtilizationPercent: 0, gpuMemoryUsedMiB: 0, gpuMemoryTotalMiB: 0 }

/** How a peer answers one request: a response, or a thrown error. Without one, the request times out like the mesh's. */
export type Responder = (method: string, data: unknown) => Promise<unknown> | unknown

class StubRpc implements MembershipRpc {
  readonly handlers = new Map<string, (req: unknown) => unknown>()
  readonly requests: Array<{ peer: NodeId, method: string, data: unknown }> = []
  readonly responders = new Map<NodeId, Responder>()

  handle<M extends MethodDef> (method: M, fn: (req: RequestOf<M>) => Promise<ResponseOf<M>> | ResponseOf<M>): void {
    this.handlers.set(method.name, fn as (req: unknown) => unknown)
  }

  async request<M extends MethodDef> (peer: NodeId, method: M, data: RequestOf<M>, opts: { timeoutMs?: number } = {}): Promise<ResponseOf<M>> {
    this.requests.push({ peer, method: method.name, data })
    const respond = this.responders.get(peer)
    if (respond !== undefined) return await respond(method.name, data) as ResponseOf<M>
    const timeoutMs = opts.timeoutMs ?? 10_000
    return await new Promise((_resolve, reject) => {
      setTimeout(() => { reject(new TimeoutError(`${method.name} to ${peer} got no answer within ${timeoutMs}ms`)) }, timeoutMs)
    })
  }

  /** Calls a handler this node registered, as a peer would. */
  async serve<M extends MethodDef> (method: M, req: RequestOf<M>): Promise<ResponseOf<M>> {
    const h = this.handlers.get(method.name)
    if (h === undefined) throw new Error(`no handler for ${method.name}`)
    return await h(req) as ResponseOf<M>
  }

  sent (peer: NodeId, method: string): number {
    return this.requests.filter(r => r.peer === peer && r.method === method).length
  }
}

export class StubMesh implements MembershipMesh {
  readonly rpc = new StubRpc()
  readonly connected = new Set<NodeId>()
  readonly published: MembershipMessage[] = []
  readonly learned: Array<{ peer: NodeId, left: boolean }> = []
  readonly hungUp: NodeId[] = []
  readonly forgotten: NodeId[] = []
  private readonly events = new EventEmitter<MembershipMeshEvents>()
  private gossip?: { topic: string, handler: GossipHandler, validate: GossipValidator }

  constructor (readonly peerId: NodeId) {}

  get topic (): string | undefined { return this.gossip?.topic }

  subscribe (topic: string, handler: GossipHandler, validate: GossipValidator): void {
    this.gossip = { topic, handler, validate }
  }

  async publish (_topic: string, data: Uint8Array): Promise<void> {
    this.published.push(decode(data) as MembershipMessage)
  }

  isConnected (peer: NodeId): boolean { return this.connected.has(peer) }
  learn (peer: NodeId, _addrs?: string[], how?: { left?: boolean }): void { this.learned.push({ peer, left: how?.left === true }) }
  forget (peer: NodeId): void { this.forgotten.push(peer) }
  async hangUp (peer: NodeId): Promise<void> { this.hungUp.push(peer); this.connected.delete(peer) }

  on<K extends keyof MembershipMeshEvents> (event: K, listener: (...args: MembershipMeshEvents[K]) => void): this {
    this.events.on(event, listener as never)
    return this
  }

  off<K extends keyof MembershipMeshEvents> (event: K, listener: (...args: MembershipMeshEvents[K]) => void): this {
    this.events.off(event, listener as never)
    return this
  }

  /** Fires a connection event, as the mesh does when libp2p reports one. */
  emit (event: keyof MembershipMeshEvents, peer: NodeId): void {
    this.events.emit(event, peer)
  }

  /**
   * Delivers a gossip message as the mesh would: validated first, handled only if accepted. Its author (the signer)
   * is, unless given, the node it speaks for: a heartbeat's `id`, a notice's `by`.
   */
  deliver (msg: unknown, from: Partial<GossipSource> = {}): GossipVerdict {
    const m = msg as { t?: string, id?: unknown, by?: unknown }
    const speaker = m.t === 'notice' ? m.by : m.id
    return this.deliverBytes(encode(msg), { author: from.author ?? (typeof speaker === 'string' ? speaker : 'nobody'), via: from.via ?? 'relay' })
  }

  deliverBytes (data: Uint8Array, from: GossipSource = { author: 'nobody', via: 'relay' }): GossipVerdict {
    if (this.gossip === undefined) throw new Error('nothing subscribed')
    const verdict = this.gossip.validate(data, from)
    if (verdict === 'accept') this.gossip.handler(data, from)
    return verdict
  }

  /** Everything this node published of one kind, in order. */
  heartbeats (): Array<Extract<MembershipMessage, { t: 'hb' }>> {
    return this.published.filter((m): m is Extract<MembershipMessage, { t: 'hb' }> => m.t === 'hb')
  }

  notices (): Array<Extract<MembershipMessage, { t: 'notice' }>> {
    return this.published.filter((m): m is Extract<MembershipMessage, { t: 'notice' }> => m.t === 'notice')
  }
}

/** An event-loop lag the test sets, read the way local health reads Node's histogram. */
export class FixedLag implements LagSampler {
  ms = 0
  enabled = false
  enable (): void { this.enabled = true }
  disable (): void { this.enabled = false }
  p99Ms (): number { return this.ms }
  reset (): void {}
}

/** A pino logger whose lines the test can read. */
export function memoryLogger (): { logger: Logger, lines: Array<{ level: number, msg: string, [k: string]: unknown }> } {
  const lines: Array<{ level: number, msg: string }> = []
  const sink = new Writable({ write (chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done() } })
  return { logger: pino({ level: 'debug' }, sink), lines }
}

/** Moves the fake clock on in small steps until the condition holds; fails if it does not within `maxMs` of fake time. */
export async function advanceUntil (cond: () => boolean, maxMs = 10_000, stepMs = 10): Promise<void> {
  for (let waited = 0; !cond(); waited += stepMs) {
    if (waited >= maxMs) throw new Error(`condition not met within ${maxMs} ms of fake time`)
    await vi.advanceTimersByTimeAsync(stepMs)
  }
}
