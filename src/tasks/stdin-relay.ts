/**
 * A task's stdin from its origin's side: what the client sends (POST /v1/tasks/ID/stdin) goes, in order and one piece
 * at a time, to the executor of the task's first attempt (`task.stdin`, or the local executor), each answered once
 * the executor took it, which carries the task's back-pressure back to the client. Until an executor has the task the
 * client waits. Stdin is not replayed: a later attempt runs with an empty stdin, and the client hears `open: false`.
 */
import { TASK_STDIN_CHUNK_MAX_BYTES, TaskStdin } from '../../proto/index.ts'
import { InvalidArgumentError, NotFoundError } from '../interface/index.ts'
import type { TasksComponents } from './components.ts'
import { runDeadline, type Coordinated } from './coordinator.ts'

export interface StdinWrite { data: Uint8Array, end: boolean }

/** The body of POST /v1/tasks/ID/stdin: `{data?, encoding?: "utf8" | "base64", end?}`. */
export function parseStdinBody (body: unknown): StdinWrite {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new InvalidArgumentError('stdin needs a JSON body such as {"data": "text", "end": true}')
  const b = body as Record<string, unknown>
  for (const k of Object.keys(b)) if (k !== 'data' && k !== 'encoding' && k !== 'end') throw new InvalidArgumentError(`stdin: unknown field ${JSON.stringify(k)} (fields: data, encoding, end)`)
  if (b.data !== undefined && typeof b.data !== 'string') throw new InvalidArgumentError('stdin: data must be a string')
  if (b.encoding !== undefined && b.encoding !== 'utf8' && b.encoding !== 'base64') throw new InvalidArgumentError('stdin: encoding must be utf8 or base64')
  if (b.end !== undefined && typeof b.end !== 'boolean') throw new InvalidArgumentError('stdin: end must be true or false')
  return { data: Buffer.from((b.data as string | undefined) ?? '', (b.encoding as BufferEncoding | undefined) ?? 'utf8'), end: b.end === true }
}

export class StdinRelay {
  /** one write at a time per task, in arrival order */
  private readonly chains = new Map<string, Promise<unknown>>()
  /** tasks whose stdin takes no more */
  private readonly closed = new WeakSet<Coordinated>()

  constructor (
    private readonly c: Pick<TasksComponents, 'peerId' | 'rpc' | 'executor'>,
    private readonly coordinated: ReadonlyMap<string, Coordinated>,
    /** a task this node has a record of (one it no longer coordinates: it ended, or a successor took it) */
    private readonly isKnown: (id: string) => boolean
  ) {}

  /** Sends bytes (and the end) to the task's stdin; `open` false when it takes no more. */
  async write (id: string, w: StdinWrite, signal?: AbortSignal): Promise<{ open: boolean }> {
    const co = this.coordinated.get(id)
    if (co === undefined) {
      if (this.isKnown(id)) return { open: false }
      throw new NotFoundError(`no task ${id}`)
    }
    if (co.spec.stdin !== true) throw new InvalidArgumentError(`task ${id} was not submitted with stdin: true; its stdin is empty`)
    const next = (this.chains.get(id) ?? Promise.resolve()).then(async () => await this.send(co, w, signal))
    const tail = next.catch(() => {})
    this.chains.set(id, tail)
    void tail.then(() => { if (this.chains.get(id) === tail) this.chains.delete(id) })
    return await next
  }

  private async send (co: Coordinated, w: StdinWrite, signal?: AbortSignal): Promise<{ open: boolean }> {
    if (this.closed.has(co)) return { open: false }
    await this.placed(co, signal)
    const node = co.executor
    if (co.coord.attempt !== 1 || node === undefined || this.coordinated.get(co.id) !== co) return this.close(co)
    let off = 0
    do {
      const data = w.data.subarray(off, off + TASK_STDIN_CHUNK_MAX_BYTES)
      off += data.byteLength
      const end = w.end && off >= w.data.byteLength
      let open: boolean
      try {
        open = node === this.c.peerId
          ? (await this.c.executor.writeStdin(co.id, 1, data, end)).open
          : (await this.c.rpc.request(node, TaskStdin, { id: co.id, attempt: 1, data, end }, { timeoutMs: runDeadline(co.spec), ...(signal === undefined ? {} : { signal }) })).open
      } catch {
        // the executor lost the task or went away: the attempt is over for stdin (a retry gets an empty one)
        open = false
      }
      if (!open || end) return this.close(co)
    } while (off < w.data.byteLength)
    return { open: true }
  }

  private close (co: Coordinated): { open: false } {
    this.closed.add(co)
    return { open: false }
  }

  /** Until an executor took the task (or it ended, or the client gave up). */
  private async placed (co: Coordinated, signal?: AbortSignal): Promise<void> {
    if (co.placed || this.coordinated.get(co.id) !== co) return
    await new Promise<void>(resolve => {
      const done = (): void => { co.onPlaced = undefined; signal?.removeEventListener('abort', done); resolve() }
      co.onPlaced = done
      signal?.addEventListener('abort', done, { once: true })
    })
  }
}
