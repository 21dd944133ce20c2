import { AbortError, ConnectionClosedError, StreamResetError, TimeoutError as Libp2pTimeoutError } from '@libp2p/interface'
import { StreamClosedError } from '@libp2p/utils'
import { describe, expect, it } from 'vitest'
import { CancelledError, InternalError, PeerUnreachableError, TimeoutError, errorFromWire, toGridError } from '../../src/interface/index.ts'
import { classifyProbeError } from '../../src/membership/probe-outcome.ts'

function sysError (code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code, errno: -111, syscall: 'connect' })
}

describe('membership - probe outcome', () => {
  it('calls a GridError TIMEOUT a timeout', () => {
    const r = classifyProbeError(new TimeoutError('member.ping to a got no answer within 50ms'))
    expect(r).toEqual({ ok: false, reason: 'timeout', detail: 'no answer in time', streamClosed: false })
  })

  it('calls a timeout that came back over the wire a timeout', () => {
    expect(classifyProbeError(errorFromWire({ code: 'TIMEOUT', message: 'x' })).reason).toBe('timeout')
  })

  it('calls a deadline signal (DOMException TimeoutError) wrapped by toGridError a timeout', () => {
    const err = toGridError(new DOMException('The operation was aborted due to timeout', 'TimeoutError'))
    expect(classifyProbeError(err).reason).toBe('timeout')
  })

  it('calls libp2p TimeoutError and AbortError causes a timeout', () => {
    expect(classifyProbeError(new PeerUnreachableError('cannot reach a', { cause: new Libp2pTimeoutError('dial timed out') })).reason).toBe('timeout')
    expect(classifyProbeError(new CancelledError('cancelled', { cause: new AbortError() })).reason).toBe('timeout')
  })

  it('calls ECONNREFUSED in the cause chain refused', () => {
    const err = new PeerUnreachableError('cannot reach a: dial failed', { cause: sysError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:4001') })
    expect(classifyProbeError(err)).toEqual({ ok: false, reason: 'refused', detail: 'connection refused', streamClosed: false })
  })

  it('finds ECONNREFUSED inside the dial queue AggregateError, and prefers it to a timeout on another address', () => {
    const agg = new AggregateError([new Libp2pTimeoutError('slow address'), sysError('ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.1:4001')], 'All multiaddr dials failed')
    const err = new PeerUnreachableError('cannot reach a', { cause: new InternalError('wrapped', { cause: agg }) })
    expect(classifyProbeError(err).reason).toBe('refused')
  })

  it('calls a libp2p StreamResetError under the request a closed stream, worth one more try', () => {
    const err = new PeerUnreachableError('stream to a closed (the stream has been reset)', { cause: new StreamResetError('the stream has been reset') })
    expect(classifyProbeError(err)).toMatchObject({ reason: 'unreachable', streamClosed: true, detail: err.message })
    expect(classifyProbeError(new StreamResetError()).streamClosed).toBe(true)
    expect(classifyProbeError(toGridError(new StreamClosedError('closed'))).streamClosed).toBe(true)
    expect(classifyProbeError(new PeerUnreachableError('x', { cause: new ConnectionClosedError('gone') })).streamClosed).toBe(true)
    expect(classifyProbeError(new PeerUnreachableError('x', { cause: sysError('ECONNRESET', 'read ECONNRESET') })).streamClosed).toBe(true)
  })

  it('calls a PEER_UNREACHABLE without a cause (a stream that closed cleanly) a closed stream', () => {
    expect(classifyProbeError(new PeerUnreachableError('a closed the stream before answering')).streamClosed).toBe(true)
  })

  it('does not call a dial failure a closed stream', () => {
    const dial = Object.assign(new Error('connect EHOSTUNREACH 10.0.0.9:4001'), { code: 'EHOSTUNREACH' })
    expect(classifyProbeError(new PeerUnreachableError('cannot reach a', { cause: dial }))).toMatchObject({ reason: 'unreachable', streamClosed: false })
  })

  it('never decides from message text', () => {
    const misleading = new Error('ECONNREFUSED; TimeoutError: timed out; aborted; stream to a closed')
    expect(classifyProbeError(misleading)).toEqual({ ok: false, reason: 'unreachable', detail: misleading.message, streamClosed: false })
    expect(classifyProbeError(new InternalError('connect ECONNREFUSED 127.0.0.1:1')).reason).toBe('unreachable')
  })

  it('survives odd throws and cause cycles', () => {
    expect(classifyProbeError('boom')).toMatchObject({ reason: 'unreachable', detail: 'boom' })
    const a = new Error('a') as Error & { cause?: unknown }
    const b = new Error('b', { cause: a })
    a.cause = b
    expect(classifyProbeError(a).reason).toBe('unreachable')
  })
})
