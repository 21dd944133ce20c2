/**
 * The in-memory network the real membership code runs on: one `SimMesh` per process life implements
 * `MembershipMesh` (the seam where libp2p is replaced), over links with per-link delay, jitter, loss and replays,
 * partitions, frozen and crashed processes.
 *
 * What is modelled rather than run (everything above the seam is the real code):
 * - gossipsub: a published message reaches every subscriber once (its seen-cache dedups copies), after as many hops
 *   as the receiver is from the author in a random D-regular mesh, each hop a link delay. Bytes are counted as
 *   gossipsub would send them: the real encoded heartbeat plus a signed envelope, forwarded by each receiver to its
 *   D-1 other mesh peers, and IHAVE gossip (message ids of the last GOSSIP_WINDOWS seconds to D_LAZY peers).
 * - the RPC streams: the real request and response frames (encodeRpcFrame) on a reliable stream: a lost packet is a
 *   retransmission (RETRANSMIT_MS later), a partition or a powered-off host loses it (the caller's deadline fires),
 *   a killed process's host answers "connection refused".
 * - connections: a link is connected unless partitioned, hung up (until a heartbeat makes the node dial again) or
 *   its peer's process was killed (its host resets the connection: `peer:disconnect` after one link delay).
 */
import { EventEmitter } from 'node:events'
import { encodeRpcFrame, RPC_MAX_FRAME_BYTES, type MethodDef, type RequestOf, type ResponseOf } from '../../proto/index.ts'
import { GridError, PeerUnreachableError, ProtocolError, TimeoutError, toGridError, type NodeId } from '../../src/interface/index.ts'
import type { GossipHandler, GossipValidator } from '../../src/mesh/index.ts'
import type { MembershipMesh, MembershipMeshEvents, MembershipRpc } from '../../src/membership/index.ts'
import { KIND, type VirtualClock } from './clock.ts'
import type { SimEvent } from './heap.ts'
import type { Rng } from './rng.ts'

/** gossipsub's defaults (D, D_lazy, mcache_gossip windows of one heartbeat each, max IHAVE length). */
export const MESH_DEGREE = 6
export const D_LAZY = 6
export const GOSSIP_WINDOWS = 3
export const MAX_IHAVE_LENGTH = 5000
/** A StrictSign message's envelope around the data: from (38 B), seqno (8 B), topic, signature (64 B), protobuf tags and RPC framing. */
export const GOSSIP_ENVELOPE_BYTES = 130
/** A message id (from + seqno) in an IHAVE, with its tag. */
export const MESSAGE_ID_BYTES = 48
/** TCP's minimum retransmission timeout on Linux: what a lost packet on a stream costs. */
export const RETRANSMIT_MS = 200

export interface LinkModel {
  /** each link's base one-way delay is drawn from [lo, hi] ms at the start */
  baseDelayMs: [number, number]
  /** plus an exponential jitter of this mean per message */
  jitterMeanMs: number
  /** chance a gossip delivery is lost (gossipsub has no retransmission; IWANT may recover some, not modelled) */
  gossipLoss: number
  /** chance an RPC frame's packet is lost (costs a retransmission) */
  rpcLoss: number
  /** chance a gossip message is delivered again later (a replay after the seen-cache forgot it) */
  replay: number
}

export interface Faults {
  /** process killed (host up: refused, connections reset) or powered off (silent) */
  crashed: Uint8Array
  killed: Uint8Array
  frozen: Uint8Array
  /** partition group per node: nodes in different groups cannot reach each other */
  group: Int32Array
  /** extra one-way delay on every link of a node (a slow or congested host) */
  slowMs: Float64Array
}

export class SimNetwork {
  readonly ids: NodeId[]
  readonly index = new Map<NodeId, number>()
  readonly life: Int32Array
  readonly faults: Faults
  readonly meshes: Array<SimMesh | undefined>
  readonly held: SimEvent[][]
  /** event-loop lag each node's LagSampler reports (a thawed node saw its whole freeze as one delay) */
  readonly lagMs: Float64Array
  private readonly baseDelay: Float32Array
  /** receivers of a message from each author, by hop: byHop[author][hop-1] */
  private readonly byHop: Int32Array[][]
  private readonly hungUp = new Set<number>()
  private rpcId = 0
  noise = true
  gossipBytes = 0
  rpcBytes = 0
  published = 0
  delivered = 0

  constructor (private readonly clock: VirtualClock, private readonly rng: Rng, readonly n: number, private readonly link: LinkModel) {
    this.ids = Array.from({ length: n }, (_, i) => fakePeerId(rng, i))
    this.ids.forEach((id, i) => this.index.set(id, i))
    this.life = new Int32Array(n)
    this.faults = { crashed: new Uint8Array(n), killed: new Uint8Array(n), frozen: new Uint8Array(n), group: new Int32Array(n), slowMs: new Float64Array(n) }
    this.meshes = new Array(n).fill(undefined)
    this.held = Array.from({ length: n }, () => [])
    this.lagMs = new Float64Array(n)
    this.baseDelay = new Float32Array(n * n)
    for (let i = 0; i < n * n; i++) this.baseDelay[i] = rng.range(link.baseDelayMs[0], link.baseDelayMs[1])
    this.byHop = meshHops(rng, n, MESH_DEGREE)
    clock.gate = {
      life: node => this.life[node] ?? 0,
      hold: (node, e) => {
        if (this.faults.frozen[node] !== 1) return false
        this.held[node]?.push(e)
        return true
      }
    }
  }

  /** One-way delay of one message from a to b now. */
  delay (a: number, b: number): number {
    const jitter = this.noise ? this.rng.exp(this.link.jitterMeanMs) : 0
    return (this.baseDelay[a * this.n + b] ?? 1) + jitter + (this.faults.slowMs[a] ?? 0) + (this.faults.slowMs[b] ?? 0)
  }

  reachable (a: number, b: number): boolean {
    const f = this.faults
    return f.group[a] === f.group[b] && f.crashed[b] !== 1
  }

  connected (a: number, b: number): boolean {
    const f = this.faults
    if (f.group[a] !== f.group[b] || this.hungUp.has(a * this.n + b)) return false
    return !(f.crashed[b] === 1 && f.killed[b] === 1)
  }

  attach (i: number, mesh: SimMesh): void { this.meshes[i] = mesh }

  /** The process of node i dies: its timers and messages are dropped with its life; peers see resets if killed. */
  crash (i: number, killed: boolean): void {
    const f = this.faults
    f.crashed[i] = 1
    f.killed[i] = killed ? 1 : 0
    f.frozen[i] = 0
    this.held[i] = []
    this.life[i] = (this.life[i] ?? 0) + 1
    this.meshes[i] = undefined
    if (!killed) return
    const id = this.ids[i] as NodeId
    for (let p = 0; p < this.n; p++) {
      if (p === i || f.group[p] !== f.group[i] || f.crashed[p] === 1) continue
      this.clock.at(this.delay(i, p), p, KIND.connect, () => { this.meshes[p]?.emit('peer:disconnect', id) })
    }
  }

  /** The node's host is back: the simulation starts a fresh process on it (a new life). */
  revive (i: number): void {
    this.faults.crashed[i] = 0
    this.faults.killed[i] = 0
    for (let p = 0; p < this.n; p++) { this.hungUp.delete(i * this.n + p); this.hungUp.delete(p * this.n + i) }
  }

  freeze (i: number): void { this.faults.frozen[i] = 1 }

  /** Thaws a frozen node: its overdue timers run first (Node's timers phase), then the messages that waited (poll). */
  thaw (i: number, frozenForMs: number): void {
    if (this.faults.frozen[i] !== 1) return
    this.faults.frozen[i] = 0
    this.lagMs[i] = Math.max(this.lagMs[i] ?? 0, frozenForMs)
    const held = this.held[i] ?? []
    this.held[i] = []
    for (const e of held) if (e.kind === KIND.timer) this.clock.requeue(e)
    for (const e of held) if (e.kind !== KIND.timer) this.clock.requeue(e)
  }

  /** Publishes on the heartbeat topic from `from`: every reachable subscriber gets it, hop by hop. */
  publish (from: number, topic: string, data: Uint8Array): void {
    this.published++
    const size = data.byteLength + GOSSIP_ENVELOPE_BYTES
    this.gossipBytes += size * MESH_DEGREE
    const author = this.ids[from] as NodeId
    const hops = this.byHop[from] ?? []
    let at = 0
    let prev = from
    for (let h = 0; h < hops.length; h++) {
      const receivers = hops[h] as Int32Array
      // one delay per hop level: the message moves through the mesh as a front
      const next = receivers[0] ?? from
      at += this.delay(prev, next)
      prev = next
      this.clock.at(at, -1, KIND.gossip, () => { this.deliverAll(from, author, topic, data, size, receivers, h === 0 ? author : undefined) })
    }
  }

  private deliverAll (from: number, author: NodeId, topic: string, data: Uint8Array, size: number, receivers: Int32Array, via: NodeId | undefined): void {
    const f = this.faults
    const link = this.link
    for (let k = 0; k < receivers.length; k++) {
      const r = receivers[k] as number
      if (f.crashed[r] === 1 || f.group[r] !== f.group[from]) continue
      if (this.noise && this.rng.chance(link.gossipLoss)) continue
      this.gossipBytes += size * (MESH_DEGREE - 1)
      const relay = via ?? this.ids[receivers[(k + 1) % receivers.length] as number] as NodeId
      if (this.noise && this.rng.chance(link.replay)) {
        this.clock.at(this.rng.range(500, 30_000), r, KIND.gossip, () => { this.deliverOne(r, topic, data, author, relay) })
      }
      if (f.frozen[r] === 1) {
        this.clock.at(0, r, KIND.gossip, () => { this.deliverOne(r, topic, data, author, relay) })
        continue
      }
      this.deliverOne(r, topic, data, author, relay)
    }
  }

  private deliverOne (r: number, topic: string, data: Uint8Array, author: NodeId, via: NodeId): void {
    const mesh = this.meshes[r]
    if (mesh === undefined) return
    this.delivered++
    const prevNode = this.clock.current
    const prevLife = this.clock.currentLife
    this.clock.current = r
    this.clock.currentLife = this.life[r] ?? 0
    try { mesh.deliver(topic, data, { author, via }) } finally { this.clock.current = prevNode; this.clock.currentLife = prevLife }
  }

  /** IHAVE gossip over the whole run: each node, each second, tells D_LAZY peers the ids it saw in the last windows. */
  ihaveBytes (simulatedMs: number): number {
    return this.ihaveBytesFor(this.published, simulatedMs / 1000)
  }

  /** The same for `published` messages over `seconds`. */
  ihaveBytesFor (published: number, seconds: number): number {
    const perSecond = seconds > 0 ? published / seconds : 0
    return this.n * seconds * D_LAZY * Math.min(MAX_IHAVE_LENGTH, perSecond * GOSSIP_WINDOWS) * MESSAGE_ID_BYTES
  }

  async request<M extends MethodDef> (from: number, fromLife: number, to: number, method: M, data: RequestOf<M>, timeoutMs: number): Promise<ResponseOf<M>> {
    const id = ++this.rpcId
    const reqFrame = encodeRpcFrame({ type: 'request', id, method: method.name, data, deadlineMs: Math.max(1, Math.round(timeoutMs)) }, RPC_MAX_FRAME_BYTES)
    return await new Promise<ResponseOf<M>>((resolve, reject) => {
      let done = false
      const finish = (err: Error | undefined, value?: ResponseOf<M>): void => {
        if (done) return
        done = true
        timer.cancelled = true
        if (err !== undefined) reject(err)
        else resolve(value as ResponseOf<M>)
      }
      // as the real channel's deadline (util's afterPendingIo): judged after the messages already waiting for this node,
      // so a node that thaws takes an answer that came while it was frozen
      const timer = this.clock.at(timeoutMs, from, KIND.rpcFail, () => {
        this.clock.at(0, from, KIND.rpcFail, () => { finish(new TimeoutError(`${method.name} to ${this.ids[to]} timed out after ${timeoutMs}ms`)) }, fromLife)
      }, fromLife)
      const f = this.faults
      if (f.group[from] !== f.group[to]) return // lost in the partition: the deadline decides
      if (f.crashed[to] === 1) {
        if (f.killed[to] !== 1) return // powered off: silence
        const refused = Object.assign(new Error(`connect ECONNREFUSED ${this.ids[to]}`), { code: 'ECONNREFUSED' })
        this.clock.at(2 * this.delay(from, to), from, KIND.rpcFail, () => { finish(new PeerUnreachableError(`could not dial ${this.ids[to]}`, { cause: refused })) }, fromLife)
        return
      }
      this.rpcBytes += reqFrame.byteLength
      const toLife = this.life[to] ?? 0
      this.clock.at(this.streamDelay(from, to), to, KIND.rpcRequest, () => {
        const mesh = this.meshes[to]
        const handler = mesh?.handlers.get(method.name)
        const answer = (result: { data: unknown } | { error: GridError }): void => {
          const frame = 'data' in result
            ? encodeRpcFrame({ type: 'result', id, data: result.data }, RPC_MAX_FRAME_BYTES)
            : encodeRpcFrame({ type: 'error', id, error: { code: result.error.code, message: result.error.message.slice(0, 4096) } }, RPC_MAX_FRAME_BYTES)
          if (this.faults.group[from] !== this.faults.group[to] || this.faults.crashed[from] === 1) return
          this.rpcBytes += frame.byteLength
          this.clock.at(this.streamDelay(to, from), from, KIND.rpcResponse, () => {
            if ('error' in result) { finish(result.error); return }
            if (!method.response.check(result.data)) { finish(new ProtocolError(`invalid ${method.name} response`)); return }
            finish(undefined, result.data as ResponseOf<M>)
          }, fromLife)
        }
        if (handler === undefined) { answer({ error: new GridError('NOT_FOUND', `no handler for ${method.name}`) }); return }
        if (!method.request.check(data)) { answer({ error: new ProtocolError(`invalid ${method.name} request`) }); return }
        Promise.resolve().then(async () => await handler(data)).then(
          value => { answer({ data: value }) },
          (err: unknown) => { answer({ error: toGridError(err) }) }
        )
      }, toLife)
    })
  }

  /** A frame on a reliable stream: its delay, plus a retransmission for each lost packet. */
  private streamDelay (a: number, b: number): number {
    let d = this.delay(a, b)
    while (this.noise && this.rng.chance(this.link.rpcLoss)) d += RETRANSMIT_MS
    return d
  }

  /** Node a hangs up on b: both ends drop the connection; b sees it if it can hear a. */
  hangUp (a: number, b: number): void {
    this.hungUp.add(a * this.n + b)
    this.hungUp.add(b * this.n + a)
    if (!this.reachable(a, b)) return
    const id = this.ids[a] as NodeId
    this.clock.at(this.delay(a, b), b, KIND.connect, () => { this.meshes[b]?.emit('peer:disconnect', id) })
  }

  /** Node a dials b (it heard of it): connected again after a round trip, if b can be reached. */
  dial (a: number, b: number): void {
    if (!this.hungUp.has(a * this.n + b) || !this.reachable(a, b)) return
    const idB = this.ids[b] as NodeId
    const idA = this.ids[a] as NodeId
    this.clock.at(2 * this.delay(a, b), a, KIND.connect, () => {
      if (!this.reachable(a, b) || !this.hungUp.has(a * this.n + b)) return
      this.hungUp.delete(a * this.n + b)
      this.hungUp.delete(b * this.n + a)
      this.meshes[a]?.emit('peer:connect', idB)
      this.clock.at(0, b, KIND.connect, () => { this.meshes[b]?.emit('peer:connect', idA) })
    })
  }
}

/** One process life's mesh: what the real Membership is handed instead of the libp2p Mesh. */
export class SimMesh extends EventEmitter<MembershipMeshEvents> implements MembershipMesh {
  readonly peerId: NodeId
  readonly rpc: MembershipRpc
  readonly handlers = new Map<string, (req: unknown) => unknown>()
  private readonly topics = new Map<string, { handler: GossipHandler, validate: GossipValidator }>()

  constructor (private readonly net: SimNetwork, private readonly i: number, private readonly lifeNo: number) {
    super()
    this.peerId = net.ids[i] as NodeId
    this.rpc = {
      handle: (method, fn) => { this.handlers.set(method.name, fn as (req: unknown) => unknown) },
      request: async (peer, method, data, opts) => {
        const to = this.net.index.get(peer)
        if (to === undefined) throw new PeerUnreachableError(`unknown peer ${peer}`)
        return await this.net.request(this.i, this.lifeNo, to, method, data, opts?.timeoutMs ?? 10_000)
      }
    }
  }

  subscribe (topic: string, handler: GossipHandler, validate: GossipValidator): void { this.topics.set(topic, { handler, validate }) }

  async publish (topic: string, data: Uint8Array): Promise<void> {
    if (this.net.meshes[this.i] !== this) return
    this.net.publish(this.i, topic, data)
  }

  /** A gossip message reaches this node: the validator decides, as gossipsub's topic validator would. */
  deliver (topic: string, data: Uint8Array, from: { author: NodeId, via: NodeId }): void {
    const t = this.topics.get(topic)
    if (t === undefined) return
    if (t.validate(data, from) !== 'accept') return
    t.handler(data, from)
  }

  isConnected (peer: NodeId): boolean {
    const p = this.net.index.get(peer)
    return p !== undefined && p !== this.i && this.net.connected(this.i, p)
  }

  learn (peer: NodeId): void {
    const p = this.net.index.get(peer)
    if (p !== undefined && p !== this.i) this.net.dial(this.i, p)
  }

  forget (): void {}

  async hangUp (peer: NodeId): Promise<void> {
    const p = this.net.index.get(peer)
    if (p !== undefined && this.net.meshes[this.i] === this) this.net.hangUp(this.i, p)
  }
}

/** A random D-regular-ish mesh; for each author, the other nodes grouped by their hop distance from it. */
function meshHops (rng: Rng, n: number, d: number): Int32Array[][] {
  const adj: number[][] = Array.from({ length: n }, () => [])
  for (let i = 0; i < n; i++) {
    let guard = 0
    while ((adj[i] as number[]).length < Math.min(d, n - 1) && guard++ < 50 * d) {
      const j = rng.int(n)
      if (j === i || (adj[i] as number[]).includes(j) || (adj[j] as number[]).length >= d * 2) continue
      ;(adj[i] as number[]).push(j)
      ;(adj[j] as number[]).push(i)
    }
  }
  const dist = new Int32Array(n)
  return Array.from({ length: n }, (_, src) => {
    dist.fill(-1)
    dist[src] = 0
    const queue = [src]
    const levels: number[][] = []
    for (let q = 0; q < queue.length; q++) {
      const u = queue[q] as number
      for (const v of adj[u] as number[]) {
        if (dist[v] !== -1) continue
        const dv = (dist[u] as number) + 1
        dist[v] = dv
        ;(levels[dv - 1] ??= []).push(v)
        queue.push(v)
      }
    }
    // a node the random mesh left unconnected still gets messages (gossipsub grafts it), one hop past the last level
    const missing: number[] = []
    for (let v = 0; v < n; v++) if (dist[v] === -1) missing.push(v)
    if (missing.length > 0) levels.push(missing)
    return levels.map(l => Int32Array.from(l))
  })
}

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

/** A peer id of a real Ed25519 one's shape and length (12D3KooW + 44 base58 characters), from the seed. */
function fakePeerId (rng: Rng, i: number): NodeId {
  let s = '12D3KooW'
  for (let k = 0; k < 40; k++) s += B58[rng.int(B58.length)]
  return s + i.toString(36).padStart(4, '0')
}
