/**
 * A warm worker's stdout as replies (proto/worker.ts): cut into lines with a length limit, so an endless line costs
 * bounded memory, and each line read as the reply it is, or the problem with it.
 */
import { WORKER_REPLY_MAX_BYTES, type WorkerOutcome } from '../../proto/index.ts'

export interface ReplyLineHandlers {
  line: (line: Buffer) => void
  /** a line was longer than WORKER_REPLY_MAX_BYTES: it was dropped, up to its end */
  overflow: () => void
}

/** Cuts a byte stream into lines; a line that grows past the limit is dropped and reported once, at its end. */
export class ReplyLines {
  private parts: Buffer[] = []
  private partBytes = 0
  private overflow = false

  constructor (private readonly handlers: ReplyLineHandlers, private readonly maxBytes = WORKER_REPLY_MAX_BYTES) {}

  push (d: Buffer): void {
    let start = 0
    for (let nl = d.indexOf(10); nl >= 0; nl = d.indexOf(10, start)) {
      const piece = d.subarray(start, nl)
      start = nl + 1
      if (this.overflow) {
        this.overflow = false
        this.handlers.overflow()
        continue
      }
      const line = this.parts.length === 0 ? piece : Buffer.concat([...this.parts, piece])
      this.parts = []
      this.partBytes = 0
      this.handlers.line(line)
    }
    const rest = d.subarray(start)
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
export function parseReply (line: Buffer): { id: string, outcome: WorkerOutcome } | { problem: string } | undefined {
  if (line.byteLength === 0) return undefined
  let reply: { id?: unknown, result?: unknown, error?: unknown }
  try {
    reply = JSON.parse(line.toString('utf8')) as typeof reply
  } catch {
    return { problem: `the worker wrote a line that is not JSON: ${JSON.stringify(line.toString('utf8').slice(0, 120))}` }
  }
  if (reply === null || typeof reply !== 'object' || typeof reply.id !== 'string' || (!('result' in reply) && typeof reply.error !== 'string')) {
    return { problem: `the worker wrote a reply without a string id and a result or error: ${JSON.stringify(line.toString('utf8').slice(0, 120))}` }
  }
  return { id: reply.id, outcome: typeof reply.error === 'string' ? workerFailure('WORKER_ERROR', reply.error) : { ok: true, result: reply.result } }
}

export function workerFailure (code: string, error: string): WorkerOutcome {
  return { ok: false, code, error }
}
