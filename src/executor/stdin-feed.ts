/**
 * A task's open stdin as the executor holds it: bytes its client streams, kept (up to a bound) while the task waits
 * to start, then handed to its process with the process's back-pressure. `write` answers once the bytes are taken:
 * buffered within the bound, or handed to the child below its high-water mark, so a client can never make the
 * executor hold more than the bound for a task that does not read. Nothing is replayed: the feed belongs to one
 * attempt, and `close` (the process ended) turns every waiting and later write into "not open".
 */

/** What the feed writes to: the task's child (process-host's Child). */
export interface StdinSink {
  /** false: over its high-water mark; `drained` is called when it can take more */
  write: (data: Uint8Array) => boolean
  end: () => void
}

interface Held { data: Uint8Array, taken: (open: boolean) => void }

export class StdinFeed {
  private sink?: StdinSink
  private held: Held[] = []
  private heldBytes = 0
  /** writers waiting for the sink to drain */
  private waiting: Array<(open: boolean) => void> = []
  private full = false
  private ended = false
  private closed = false

  constructor (private readonly maxHeldBytes: number) {}

  /** Bytes the process has not got yet (held while it waits to start). */
  get bufferedBytes (): number { return this.heldBytes }

  /** Still taking bytes: neither ended by the client nor closed by the process's end. */
  get open (): boolean { return !this.ended && !this.closed }

  /** Takes bytes; true once taken, false when this stdin takes no more (then the bytes are dropped). */
  async write (data: Uint8Array): Promise<boolean> {
    if (!this.open) return false
    if (data.byteLength === 0) return true
    if (this.sink === undefined) {
      this.heldBytes += data.byteLength
      if (this.heldBytes <= this.maxHeldBytes) { this.held.push({ data, taken: () => {} }); return true }
      return await new Promise<boolean>(resolve => { this.held.push({ data, taken: resolve }) })
    }
    if (this.sink.write(data) && !this.full) return true
    this.full = true
    return await new Promise<boolean>(resolve => { this.waiting.push(resolve) })
  }

  /** The client's stdin ended: the process's closes after what it has been given. */
  end (): void {
    if (!this.open) return
    this.ended = true
    if (this.sink !== undefined && this.held.length === 0) this.sink.end()
  }

  /** The process started: what was held goes to it now (its writers answer once it drains, if it must). */
  attach (sink: StdinSink): void {
    if (this.closed || this.sink !== undefined) return
    this.sink = sink
    const held = this.held
    this.held = []
    this.heldBytes = 0
    let ok = true
    for (const h of held) ok = sink.write(h.data) && ok
    if (ok) for (const h of held) h.taken(true)
    else { this.full = true; for (const h of held) this.waiting.push(h.taken) }
    if (this.ended) sink.end()
  }

  /** The sink can take more: waiting writers go on. */
  drained (): void {
    this.full = false
    const w = this.waiting
    this.waiting = []
    for (const resolve of w) resolve(!this.closed)
  }

  /** The process is over (or never started): nothing more is taken, and every waiting writer hears so. */
  close (): void {
    if (this.closed) return
    this.closed = true
    const pending = [...this.held.map(h => h.taken), ...this.waiting]
    this.held = []
    this.heldBytes = 0
    this.waiting = []
    for (const resolve of pending) resolve(false)
  }
}
