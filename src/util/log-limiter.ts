/** Lets an event through once per key per window: "logged once per peer per minute". */
export class LogLimiter {
  private readonly last = new Map<string, number>()

  constructor (private readonly windowMs: number, private readonly maxKeys = 10_000) {}

  allow (key: string, now = Date.now()): boolean {
    const t = this.last.get(key)
    if (t !== undefined && now - t < this.windowMs) return false
    if (this.last.size >= this.maxKeys) {
      for (const [k, v] of this.last) if (now - v >= this.windowMs) this.last.delete(k)
      if (this.last.size >= this.maxKeys) this.last.clear()
    }
    this.last.set(key, now)
    return true
  }
}
