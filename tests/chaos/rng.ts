/** A seeded pseudo-random source (mulberry32): one seed gives one run's choices, so a run can be replayed. */
export class Rng {
  private s: number
  constructor (seed: number) { this.s = seed >>> 0 }
  next (): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0
    let t = this.s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  int (n: number): number { return Math.floor(this.next() * n) }
  between (lo: number, hi: number): number { return lo + this.next() * (hi - lo) }
  pick<T> (xs: readonly T[]): T { return xs[this.int(xs.length)] as T }
  shuffle<T> (xs: readonly T[]): T[] {
    const a = [...xs]
    for (let i = a.length - 1; i > 0; i--) { const j = this.int(i + 1); [a[i], a[j]] = [a[j] as T, a[i] as T] }
    return a
  }
}
