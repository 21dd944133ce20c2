import { describe, expect, it } from 'vitest'
import { decode, encode } from '../../proto/index.ts'
import {
  DaemonNotRunningError, DaemonUnreachableError, ERRORS, ERROR_CLASSES, GridError, HINTS, InternalError, InvalidConfigError,
  NotFoundError, SocketPermissionDeniedError, TimeoutError, errorFromWire, type ErrorCode
} from '../../src/interface/index.ts'

/** An error of each code as its sender builds it: through its class where it has one. */
function original (code: ErrorCode): GridError {
  if (code === 'INVALID_CONFIG') return new InvalidConfigError(['grid.name: must be set (from /etc/grid.toml)', 'rpc.port: must be a port (from GRID_RPC_PORT)'])
  const Class = ERROR_CLASSES[code]
  const details = { what: code.toLowerCase(), n: 3 }
  return Class === undefined ? new GridError(code, `a ${code} error`, { details }) : new Class(`a ${code} error`, { details })
}

const codes = Object.keys(ERRORS) as ErrorCode[]

describe('interface - errors across a hop', () => {
  it.each(codes)('rebuilds %s as its own class, with its code, message and details', code => {
    const sent = original(code)
    // as it travels: the wire form, through msgpack (peer to peer) and JSON (daemon to CLI)
    for (const wire of [decode(encode(sent.toWire())), JSON.parse(JSON.stringify(sent.toWire()))]) {
      const got = errorFromWire(wire)
      expect(got.constructor).toBe(sent.constructor)
      expect(got).toBeInstanceOf(sent.constructor)
      expect(got).toBeInstanceOf(GridError)
      expect(got.name).toBe(sent.name)
      expect(got.code).toBe(code)
      expect(got.message).toBe(sent.message)
      expect(got.details).toEqual(sent.details)
      expect(got.status).toBe(ERRORS[code].status)
      expect(got.exitCode).toBe(ERRORS[code].exit)
    }
  })

  it('carries the next step across: the one given at the site, else the code\'s own, and none for the rest', () => {
    const site = new GridError('PORT_IN_USE', 'port 1 is in use', { hint: 'pass --listen /ip4/0.0.0.0/tcp/PORT' })
    const byCode = new GridError('UNSATISFIABLE', 'no node has 4 GPUs')
    for (const toWire of [(e: GridError) => decode(encode(e.toWire())), (e: GridError) => JSON.parse(JSON.stringify(e.toWire())) as unknown]) {
      expect(errorFromWire(toWire(site)).hint).toBe('pass --listen /ip4/0.0.0.0/tcp/PORT')
      expect(errorFromWire(toWire(byCode)).hint).toBe(HINTS.UNSATISFIABLE)
      expect(errorFromWire(toWire(new NotFoundError('no task t1'))).hint).toBeUndefined()
    }
  })

  it('keeps the daemon-not-running and permission-denied errors daemon-unreachable ones too', () => {
    for (const e of [new DaemonNotRunningError('no gridd answers at /x'), new SocketPermissionDeniedError('permission denied on /x')]) {
      expect(e).toBeInstanceOf(DaemonUnreachableError)
      expect(errorFromWire(e.toWire())).toBeInstanceOf(DaemonUnreachableError)
    }
    expect(new DaemonNotRunningError('x').code).toBe('DAEMON_NOT_RUNNING')
    expect(new SocketPermissionDeniedError('x').name).toBe('SocketPermissionDeniedError')
  })

  it('gives every code but the control server\'s own a class here', () => {
    expect(codes.filter(c => ERROR_CLASSES[c] === undefined)).toEqual(['METHOD_NOT_ALLOWED'])
  })

  it('keeps the violations of an invalid configuration', () => {
    const got = errorFromWire(new InvalidConfigError(['a: bad', 'b: worse']).toWire())
    expect(got).toBeInstanceOf(InvalidConfigError)
    expect((got as InvalidConfigError).violations).toEqual(['a: bad', 'b: worse'])
  })

  it('turns an invalid configuration sent without violations into one violation, keeping its message', () => {
    const got = errorFromWire(new GridError('INVALID_CONFIG', 'the config is wrong').toWire())
    expect(got).toBeInstanceOf(InvalidConfigError)
    expect(got.message).toBe('the config is wrong')
    expect((got as InvalidConfigError).violations).toEqual(['the config is wrong'])
  })

  it('rebuilds a bare GridError with a known code as that code\'s class', () => {
    const got = errorFromWire(new GridError('TIMEOUT', 'slow').toWire())
    expect(got).toBeInstanceOf(TimeoutError)
    expect(got.name).toBe('TimeoutError')
    expect(got.details).toBeUndefined()
  })

  it('turns an unknown code into INTERNAL, keeping the original code and details', () => {
    const got = errorFromWire({ code: 'FROM_THE_FUTURE', message: 'a newer peer said so', details: { x: 1 } })
    expect(got).toBeInstanceOf(InternalError)
    expect(got.code).toBe('INTERNAL')
    expect(got.message).toBe('a newer peer said so')
    expect(got.details).toEqual({ code: 'FROM_THE_FUTURE', details: { x: 1 } })
    expect(errorFromWire({ code: 'NOPE', message: 'm' }).details).toEqual({ code: 'NOPE' })
  })

  it('turns a malformed wire error into INTERNAL', () => {
    expect(errorFromWire('boom')).toBeInstanceOf(InternalError)
    expect(errorFromWire(null).message).toBe('malformed error from peer')
    const noMessage = errorFromWire({ code: 'NOT_FOUND' })
    expect(noMessage).toBeInstanceOf(NotFoundError)
    expect(noMessage.message).toBe('unknown error')
  })
})
