/**
 * A bounded queue of events from a task to a client stream: the producer learns when it is over its high-water
 * mark (and can pause the task), output beyond the hard limit is dropped and reported as a gap, and the consumer
 * reads it as an async iterable.
 */
export class EventQueue<T> implements AsyncIterable<T> {
  private items: T[] = []
  private bytes = 0
  private closed = false
  private failure?: Error
  private wakeReader?: () => void
  private drainWaiters: Array<() => void> = []
  dropped = 0

  constructor (private readonly highWaterBytes = 1 << 20, private readonly hardLimitBytes = 16 << 20, private readonly size: (t: T) => number = () => 64) {}

  /** Adds an event; false when the queue is over its high-water mark (slow down). Droppable events go when full. */
  push (item: T, droppable = false): boolean {
    if (this.closed) return true
    const n = this.size(item)
    if (droppable && this.bytes + n > this.hardLimitBytes) {
      this.dropped += n
      return false
    }
    this.items.push(item)
    this.bytes += n
    this.wakeReader?.()
    return this.bytes < this.highWaterBytes
  }

  /** Resolves when the consumer has read the queue below its high-water mark. */
  async drained (): Promise<void> {
    if (this.bytes < this.highWaterBytes / 2 || this.closed) return
    await new Promise<void>(resolve => this.drainWaiters.push(resolve))
  }

  close (err?: Error): void {
    if (this.closed) return
    this.closed = true
    this.failure = err
    this.wakeReader?.()
    for (const w of this.drainWaiters.splice(0)) w()
  }

  get isClosed (): boolean { return this.closed }

  async * [Symbol.asyncIterator] (): AsyncIterator<T> {
    try {
      for (;;) {
        while (this.items.length > 0) {
          const item = this.items.shift() as T
          this.bytes -= this.size(item)
          if (this.bytes < this.highWaterBytes / 2) for (const w of this.drainWaiters.splice(0)) w()
          yield item
        }
        if (this.closed) {
          if (this.failure !== undefined) throw this.failure
          return
        }
        await new Promise<void>(resolve => { this.wakeReader = resolve })
        this.wakeReader = undefined
      }
    } finally {
      // the consumer went away: nobody will read what is left
      this.closed = true
      this.items = []
      this.bytes = 0
      for (const w of this.drainWaiters.splice(0)) w()
    }
  }
}
