/**
 * A hybrid logical clock: stamps `[wall ms, counter]` that follow the wall clock but never go backwards, and move
 * past any stamp seen from a peer. Last-writer-wins between writers compares stamps, then writer ids.
 */
export type Stamp = [number, number]

/** A peer's stamp further in the future than this is not followed (a bad clock must not drag the cluster along). */
export const MAX_DRIFT_MS = 60_000

export class HybridClock {
  private last: Stamp = [0, 0]

  constructor (private readonly wall: () => number = Date.now) {}

  now (): Stamp {
    const pt = this.wall()
    this.last = pt > this.last[0] ? [pt, 0] : [this.last[0], this.last[1] + 1]
    return [this.last[0], this.last[1]]
  }

  observe (s: Stamp): void {
    if (s[0] > this.wall() + MAX_DRIFT_MS) return
    if (compareStamps(s, this.last) > 0) this.last = [s[0], s[1]]
  }
}

export function compareStamps (a: Stamp, b: Stamp): number {
  return a[0] !== b[0] ? a[0] - b[0] : a[1] - b[1]
}
