/** A binary min-heap of simulator events, ordered by virtual time and then by the order they were scheduled. */
export interface SimEvent {
  at: number
  seq: number
  /** the node whose process runs it (-1: the simulator itself) */
  node: number
  /** the process life it belongs to: an event of a crashed life is dropped */
  life: number
  kind: number
  fn: () => void
  cancelled: boolean
}

export class EventHeap {
  private readonly items: SimEvent[] = []

  get size (): number { return this.items.length }

  push (e: SimEvent): void {
    const a = this.items
    a.push(e)
    let i = a.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!before(e, a[p] as SimEvent)) break
      a[i] = a[p] as SimEvent
      i = p
    }
    a[i] = e
  }

  peek (): SimEvent | undefined { return this.items[0] }

  pop (): SimEvent | undefined {
    const a = this.items
    const top = a[0]
    const last = a.pop()
    if (top === undefined || last === undefined || a.length === 0) return top
    let i = 0
    const n = a.length
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      const c = r < n && before(a[r] as SimEvent, a[l] as SimEvent) ? r : l
      if (!before(a[c] as SimEvent, last)) break
      a[i] = a[c] as SimEvent
      i = c
    }
    a[i] = last
    return top
  }
}

function before (x: SimEvent, y: SimEvent): boolean {
  return x.at < y.at || (x.at === y.at && x.seq < y.seq)
}
