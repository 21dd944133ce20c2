/**
 * A task's output as the executor keeps it: a byte log with absolute offsets that holds at most `maxBytes` (the
 * oldest chunks go first), so a task that floods its output cannot exhaust memory. Readers ask for everything from
 * an offset and learn how many bytes they missed.
 */
export interface LogChunk {
  /** 1 stdout, 2 stderr */
  stream: 1 | 2
  data: Uint8Array
  /** offset of this chunk's first byte in the whole output */
  offset: number
}

export class OutputLog {
  private chunks: LogChunk[] = []
  private head = 0
  /** bytes written since the task started */
  total = 0
  /** bytes dropped from the front */
  dropped = 0
  private held = 0

  constructor (readonly maxBytes: number) {}

  append (stream: 1 | 2, data: Uint8Array): LogChunk {
    const chunk: LogChunk = { stream, data, offset: this.total }
    this.total += data.byteLength
    this.chunks.push(chunk)
    this.held += data.byteLength
    while (this.held > this.maxBytes && this.head < this.chunks.length) {
      const old = this.chunks[this.head++] as LogChunk
      this.held -= old.data.byteLength
      this.dropped += old.data.byteLength
    }
    if (this.head > 1024 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head)
      this.head = 0
    }
    return chunk
  }

  /** Chunks from `from` on, and how many bytes before them are gone. */
  read (from = 0): { chunks: LogChunk[], missed: number } {
    const out: LogChunk[] = []
    const firstKept = this.total - this.held
    for (let i = this.head; i < this.chunks.length; i++) {
      const c = this.chunks[i] as LogChunk
      if (c.offset + c.data.byteLength <= from) continue
      out.push(c.offset >= from ? c : { stream: c.stream, data: c.data.subarray(from - c.offset), offset: from })
    }
    return { chunks: out, missed: Math.max(0, firstKept - from) }
  }

  /** Bytes held in memory. */
  get size (): number { return this.held }

  /** The text of one stream (for a typed task's result), up to `limit` bytes; undefined when it overflowed. */
  text (stream: 1 | 2, limit: number): string | undefined {
    if (this.dropped > 0) return undefined
    const parts: Uint8Array[] = []
    let n = 0
    for (let i = this.head; i < this.chunks.length; i++) {
      const c = this.chunks[i] as LogChunk
      if (c.stream !== stream) continue
      n += c.data.byteLength
      if (n > limit) return undefined
      parts.push(c.data)
    }
    return Buffer.concat(parts).toString('utf8')
  }
}
