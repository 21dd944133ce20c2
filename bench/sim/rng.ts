/**
 * The simulator's one source of randomness: a seeded PRNG (sfc32, seeded through splitmix32), so a seed replays the
 * same run. `Math.random` inside the real components is routed here too (clock.ts).
 */
export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor (seed: number) {
    let s = seed >>> 0
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0
      let z = s
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
      return (z ^ (z >>> 16)) >>> 0
    }
    this.a = next(); this.b = next(); this.c = next(); this.d = next()
    for (let i = 0; i < 12; i++) this.next()
  }

  /** A float in [0, 1). */
  next (): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0
    this.d = (this.d + 1) >>> 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) >>> 0
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0
    this.c = (this.c + t) >>> 0
    return t / 4294967296
  }

  /** An integer in [0, n). */
  int (n: number): number { return Math.floor(this.next() * n) }

  /** A float in [lo, hi). */
  range (lo: number, hi: number): number { return lo + this.next() * (hi - lo) }

  chance (p: number): boolean { return p > 0 && this.next() < p }

  /** An exponential variate of this mean. */
  exp (mean: number): number { return -Math.log(1 - this.next()) * mean }

  /** A new generator derived from this one (its own stream, for one purpose). */
  fork (): Rng { return new Rng(Math.floor(this.next() * 4294967296)) }
}
