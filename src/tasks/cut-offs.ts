/**
 * Which peers this node saw other than alive lately (suspect, dead, left), and when: the start fence asks the
 * coordinator before starting an offer from one (start-fence.ts), and a coordinator asks its would-be successor before
 * starting an attempt after seeing it cut off (standby.ts). One `member:state` listener for both.
 */
import type { NodeId } from '../interface/index.ts'
import type { TasksComponents } from './components.ts'

const CUT_OFF_MAX_PEERS = 4096

export class CutOffs {
  /** when each peer was last seen other than alive here (performance.now()); the oldest go first when too many */
  private readonly seen = new Map<NodeId, number>()
  /** when any peer was last seen other than alive (the newest of `seen`) */
  private last = -Infinity
  private readonly onMember = (t: { id: NodeId, from: string | null, to: string }): void => {
    if (t.to === 'alive' && (t.from === null || t.from === 'alive')) return
    this.last = performance.now()
    this.seen.delete(t.id)
    this.seen.set(t.id, this.last)
    if (this.seen.size > CUT_OFF_MAX_PEERS) this.seen.delete(this.seen.keys().next().value as NodeId)
  }

  constructor (private readonly members: Pick<TasksComponents['members'], 'on' | 'off' | 'state'>) {}

  start (): void { this.members.on('member:state', this.onMember) }
  stop (): void { this.members.off('member:state', this.onMember) }

  /** Whether any peer was seen other than alive in the last `withinMs` (a peer not alive now was, when it turned). */
  anyLately (withinMs: number): boolean {
    return performance.now() - this.last < withinMs
  }

  /** Whether `node` is other than alive now, or was so in the last `withinMs`. */
  lately (node: NodeId, withinMs: number): boolean {
    if (this.members.state(node) !== 'alive') return true
    const at = this.seen.get(node)
    return at !== undefined && performance.now() - at < withinMs
  }
}
