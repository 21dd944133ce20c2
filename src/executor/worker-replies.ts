/**
 * A warm worker's stdout as replies (proto/worker.ts): cut into lines with a length limit, so an endless line costs
 * bounded memory, and each line read as the reply it is, or the problem with it.
 */
import { WORKER_REPLY_MAX_BYTES, type WorkerOutcome } from '../../proto/index.ts'

export interface ReplyLineHandlers {
  /** a line, as text (without its newline) */
  line: (line: string) => void
  /** a line was longer than WORKER_REPLY_MAX_BYTES: it was dropped, up to its end */
  overflow: () => void
}

/**
 * Cuts a byte stream into lines; a line that grows past the limit is dropped and reported once, at its end. The
 * lines a chunk holds whole are decoded in one go and cut as text (a worker's replies come many to a chunk): no
 * buffer or copy per line.
 */
export class ReplyLines {
  private parts: Buffer[] = []
  private partBytes = 0
  private overflow = false

  constructor (private readonly handlers: ReplyLineHandlers, private readonly maxBytes = WORKER_REPLY_MAX_BYTES) {}

  push (d: Buffer): void {
    const last = d.lastIndexOf(10)
    if (last < 0) { this.keep(d); return }
    const first = d.indexOf(10)
    // the line begun in earlier chunks ends at the first newline
    if (this.overflow) {
      this.overflow = false
      this.handlers.overflow()
    } else if (this.parts.length > 0) {
      const line = Buffer.concat([...this.parts, d.subarray(0, first)])
      this.parts = []
      this.partBytes = 0
      this.handlers.line(line.toString('utf8'))
    } else {
      this.handlers.line(d.toString('utf8', 0, first))
    }
    if (last > first) for (const line of d.toString('utf8', first + 1, last).split('\n')) this.handlers.line(line)
    this.keep(d.subarray(last + 1))
  }

  /** The start of a line not ended yet (dropped once it grows past the limit). */
  private keep (rest: Buffer): void {
    if (rest.byteLength === 0 || this.overflow) return
    this.partBytes += rest.byteLength
    if (this.partBytes > this.maxBytes) {
      // too long: drop it up to its end, keep memory bounded
      this.parts = []
      this.partBytes = 0
      this.overflow = true
      return
    }
    this.parts.push(Buffer.from(rest))
  }
}

/** One reply line: the request it answers and how that went, or what is wrong with it; undefined for an empty line. */
export function parseReply (line: string): { id: string, outcome: WorkerOutcome } | { problem: string } | undefined {
  if (line.length === 0) return undefined
  let reply: { id?: unknown, result?: unknown, error?: unknown }
  try {
    reply = JSON.parse(line) as typeof reply
  } catch {
    return { problem: `the worker wrote a line that is not JSON: ${JSON.stringify(line.slice(0, 120))}` }
  }
  if (reply === null || typeof reply !== 'object' || typeof reply.id !== 'string' || (!('result' in reply) && typeof reply.error !== 'string')) {
    return { problem: `the worker wrote a reply without a string id and a result or error: ${JSON.stringify(line.slice(0, 120))}` }
  }
  return { id: reply.id, outcome: typeof reply.error === 'string' ? workerFailure('WORKER_ERROR', reply.error) : { ok: true, result: reply.result } }
}

export function workerFailure (code: string, error: string): WorkerOutcome {
  return { ok: false, code, error }
}
