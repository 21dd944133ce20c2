/**
 * How run, distribute and workflow follow what they submitted: the daemon's NDJSON stream, read event by event.
 * Ctrl-C cancels the thing (and the stream is read on until it has ended); a second Ctrl-C, or one before the
 * daemon said its id, leaves at once (exit 130). A daemon that goes away mid-stream is reported with how to find
 * the thing again (it goes on in the cluster); a stream that ends without its last event is a protocol error.
 */
import { DaemonUnreachableError, ProtocolError } from '../interface/index.ts'
import type { CommandContext } from './command.ts'

export interface Followed {
  /** what is followed, in messages ("task", "job", "workflow") */
  what: string
  /** POST path of the submission; `${cancelBase}/${id}/cancel` cancels it */
  path: string
  cancelBase: string
  body: Record<string, unknown>
  /** appended to the daemon-gone message: where the thing goes on, and how to look at it */
  goesOn: (id: string) => string
  /** how to look at it when the stream ended early */
  lookUp: (id: string) => string
  /** the last event it waits for, in the protocol-error message ("exit status", "end") */
  lastEvent: string
  /** written before "cancelling ..." (a progress bar's line is cleared first) */
  cancelPrefix?: () => string
  /** called when the stream breaks (before the error is thrown), to tidy the terminal */
  onBreak?: () => void
}

/** What an event handler can do: name the submission's id when the daemon said it. */
export interface StreamHandle { accepted: (id: string) => void }

/**
 * Follows the stream, handing each event to `onEvent`; the first number `onEvent` returns is the exit code.
 */
export async function followStream<E> (ctx: CommandContext, f: Followed, onEvent: (ev: E, h: StreamHandle) => number | undefined | Promise<number | undefined>): Promise<number> {
  const stream = new AbortController()
  let id: string | undefined
  let cancelling = false
  const onInterrupt = (): void => {
    if (cancelling || id === undefined) { stream.abort(); return }
    cancelling = true
    ctx.err.write(`${f.cancelPrefix?.() ?? ''}gridctl: cancelling ${f.what} ${id}...\n`)
    void ctx.client.post(`${f.cancelBase}/${id}/cancel`, undefined).catch((err: Error) => { ctx.err.write(`gridctl: cancel failed: ${err.message}\n`) })
  }
  const handle: StreamHandle = {
    accepted: (newId) => {
      id = newId
      if (ctx.signal.aborted) onInterrupt()
    }
  }
  ctx.signal.addEventListener('abort', onInterrupt, { once: true })
  try {
    for await (const ev of ctx.client.stream<E>('POST', f.path, f.body, stream.signal)) {
      const code = await onEvent(ev, handle)
      if (code !== undefined) return code
    }
  } catch (err) {
    f.onBreak?.()
    if (err instanceof DaemonUnreachableError && id !== undefined) throw new DaemonUnreachableError(`${err.message}; ${f.goesOn(id)}`, { cause: err })
    throw err
  } finally {
    ctx.signal.removeEventListener('abort', onInterrupt)
  }
  if (stream.signal.aborted) return 130
  // a protocol failure, not the user's mistake: exit 1, saying whether it may go on
  throw new ProtocolError(`the daemon ended the stream without the ${f.what}'s ${f.lastEvent}${id === undefined ? '' : `; ${f.what} ${id} may still run: ${f.lookUp(id)}`}`)
}
