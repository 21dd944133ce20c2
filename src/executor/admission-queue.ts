/**
 * The admission queue: what waits for resources, higher priority first and in arrival order within a priority,
 * bounded. Whatever fits is taken out in that order, so a smaller item may start past a blocked bigger one.
 */

export interface Queued { priority: number }

export class AdmissionQueue<T extends Queued> {
  private readonly items: T[] = []

  /** `limit`: how many may wait at once. */
  constructor (readonly limit: number) {}

  get length (): number { return this.items.length }

  get full (): boolean { return this.items.length >= this.limit }

  has (item: T): boolean { return this.items.includes(item) }

  /** How many wait ahead of it (-1 when it is not queued). */
  ahead (item: T): number { return this.items.indexOf(item) }

  /** Everything waiting, in queue order. */
  list (): readonly T[] { return this.items }

  /** Puts it behind everything of its priority or higher (the caller checks `full`). */
  push (item: T): void {
    let i = this.items.length
    while (i > 0 && (this.items[i - 1] as T).priority < item.priority) i--
    this.items.splice(i, 0, item)
  }

  /** Takes it out; false when it was not queued. */
  remove (item: T): boolean {
    const i = this.items.indexOf(item)
    if (i < 0) return false
    this.items.splice(i, 1)
    return true
  }

  /** Takes out the first. */
  shift (): T | undefined {
    return this.items.shift()
  }

  /** Takes out everything. */
  clear (): T[] {
    return this.items.splice(0)
  }

  /**
   * Starts, in queue order, every item that fits now: each leaves the queue before `start` sees it. An item queued
   * while this runs is looked at too when it lands after the current position.
   */
  drain (fits: (item: T) => boolean, start: (item: T) => void): void {
    for (let i = 0; i < this.items.length;) {
      const item = this.items[i] as T
      if (fits(item)) {
        this.items.splice(i, 1)
        start(item)
      } else {
        i++
      }
    }
  }
}
