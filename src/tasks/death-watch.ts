/**
 * A death heard in another node's notice drops no connection (membership.ts): the stream to a frozen executor
 * (SIGSTOP) stays open and silent, and an attempt waiting on it would wait until the executor woke. The coordinator
 * guards each request to an executor with `untilDead`: once that node has been dead `confirmMs` in this node's view,
 * the request is aborted (with PEER_UNREACHABLE as the reason), so re-attaching's rule decides (issue 13).
 */
import { PeerUnreachableError, type NodeId } from '../interface/index.ts'

export class DeathWatch {
  /** the guarded requests in flight, per executor */
  private readonly inFlight = new Map<NodeId, Set<AbortController>>()

  constructor (
    private readonly state: (id: NodeId) => string | undefined,
    private readonly nameOf: (id: NodeId) => string,
    private readonly confirmMs: number
  ) {}

  /** membership's `member:state` listener */
  readonly onMember = (t: { id: NodeId, to: string }): void => {
    if (t.to !== 'dead' || !this.inFlight.has(t.id)) return
    setTimeout(() => {
      if (this.state(t.id) !== 'dead') return
      for (const a of this.inFlight.get(t.id) ?? []) a.abort(new PeerUnreachableError(`node ${this.nameOf(t.id)} has been dead for ${this.confirmMs} ms`))
    }, this.confirmMs).unref()
  }

  /** A signal aborted once `node` has been dead a while; `done` when the request it guards is over. */
  untilDead (node: NodeId): { signal: AbortSignal, done: () => void } {
    const dead = new AbortController()
    let set = this.inFlight.get(node)
    if (set === undefined) { set = new Set(); this.inFlight.set(node, set) }
    set.add(dead)
    const mine = set
    return {
      signal: dead.signal,
      done: () => {
        mine.delete(dead)
        if (mine.size === 0 && this.inFlight.get(node) === mine) this.inFlight.delete(node)
      }
    }
  }
}
