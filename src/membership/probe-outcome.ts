/**
 * What a probe's outcome says about the peer, decided from what the error *is* (GridError codes, Node's system error
 * codes, libp2p error names, followed through `cause` and AggregateError's `errors`), never from its message text.
 */
import { GridError } from '../interface/index.ts'

export type ProbeFailureReason = 'refused' | 'timeout' | 'unreachable'

export interface ProbeFailure {
  ok: false
  /** refused: its host answers but nothing listens (the process is gone); timeout: frozen, overloaded or cut off */
  reason: ProbeFailureReason
  /** for people: logs and the member's history */
  detail: string
  /** The request's stream closed under it: that says nothing about the peer yet, so it is worth one more try. */
  streamClosed: boolean
}

export type ProbeOutcome = { ok: true, rttMs: number, inc: number } | ProbeFailure

/** Node's codes for a connection whose host answered that nothing listens on the port. */
const REFUSED_CODES = new Set(['ECONNREFUSED'])
/** Node's codes for a connect or operation that ran out of time. */
const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'ABORT_ERR'])
/** libp2p's (and the DOM's) names for a deadline or an abort; a GridError TimeoutError has the same name. */
const TIMEOUT_NAMES = new Set(['TimeoutError', 'AbortError'])
/**
 * libp2p's names for a stream or connection that went away under a request (@libp2p/interface, and
 * StreamClosedError from @libp2p/utils), and Node's codes for a socket the other end dropped.
 */
const STREAM_CLOSED_NAMES = new Set(['StreamClosedError', 'StreamResetError', 'StreamAbortedError', 'StreamStateError', 'ConnectionClosedError', 'ConnectionClosingError', 'MuxerClosedError'])
const STREAM_CLOSED_CODES = new Set(['ECONNRESET', 'EPIPE'])
/** How deep `cause` and `errors` are followed. */
const MAX_DEPTH = 5

/** Sorts a failed probe: refused (host up, process gone), timeout (frozen, overloaded or cut off), or unreachable. */
export function classifyProbeError (err: unknown): ProbeFailure {
  const chain = errorChain(err)
  const streamClosed = closedUnderRequest(err, chain)
  if (chain.some(e => REFUSED_CODES.has(codeOf(e)))) return { ok: false, reason: 'refused', detail: 'connection refused', streamClosed }
  if (chain.some(isTimeout)) return { ok: false, reason: 'timeout', detail: 'no answer in time', streamClosed }
  const detail = err instanceof Error ? err.message : String(err)
  return { ok: false, reason: 'unreachable', detail, streamClosed }
}

/**
 * The request's stream or connection went away before the answer came: libp2p's or the socket's closing error is in
 * the chain, or the mesh's RPC raised PEER_UNREACHABLE without a cause (it does so for a stream that closed cleanly,
 * or whose peer closed its write side; a dial failure always carries the dial's error as `cause`).
 */
function closedUnderRequest (err: unknown, chain: object[]): boolean {
  if (err instanceof GridError && err.code === 'PEER_UNREACHABLE' && err.cause === undefined) return true
  return chain.some(e => STREAM_CLOSED_NAMES.has(nameOf(e)) || STREAM_CLOSED_CODES.has(codeOf(e)))
}

function isTimeout (e: object): boolean {
  return (e instanceof GridError && e.code === 'TIMEOUT') || TIMEOUT_NAMES.has(nameOf(e)) || TIMEOUT_CODES.has(codeOf(e))
}

/** The error, its causes and the errors it aggregates, depth first, each once. */
function errorChain (err: unknown): object[] {
  const out: object[] = []
  const walk = (e: unknown, depth: number): void => {
    if (typeof e !== 'object' || e === null || depth > MAX_DEPTH || out.includes(e)) return
    out.push(e)
    walk((e as { cause?: unknown }).cause, depth + 1)
    const errors = (e as { errors?: unknown }).errors
    if (Array.isArray(errors)) for (const sub of errors) walk(sub, depth + 1)
  }
  walk(err, 0)
  return out
}

function nameOf (e: object): string {
  const name = (e as { name?: unknown }).name
  return typeof name === 'string' ? name : ''
}

function codeOf (e: object): string {
  const code = (e as { code?: unknown }).code
  return typeof code === 'string' ? code : ''
}
