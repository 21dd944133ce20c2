import { EventEmitter } from 'node:events'
import type { MultiaddrConnection } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { InboundGuard } from '../../src/mesh/inbound-guard.ts'

/** Just what the guard uses of a connection: its address, its socket's byte count, abort, and the close event. */
function conn (port: number, bytesRead = 0): MultiaddrConnection & { aborted: boolean } {
  const e = new EventEmitter()
  const c = {
    remoteAddr: multiaddr(`/ip4/127.0.0.1/tcp/${port}`),
    socket: { bytesRead },
    aborted: false,
    abort () { c.aborted = true; e.emit('close') },
    addEventListener (name: string, fn: () => void) { e.once(name, fn) }
  }
  return c as unknown as MultiaddrConnection & { aborted: boolean }
}

describe('mesh - inbound guard', () => {
  it('evicts the oldest silent connection for a new one once the pending set is full, from any address', () => {
    let now = 0
    const lines: Array<Record<string, unknown>> = []
    const guard = new InboundGuard({ warn: (o: unknown) => { lines.push(o as Record<string, unknown>) } } as never, 4, 1_000, () => now)
    const silent = [1, 2, 3, 4].map(p => conn(p))
    for (const c of silent) expect(guard.denyInboundConnection(c)).toBe(false)
    now = 2_000
    const joiner = conn(99)
    expect(guard.denyInboundConnection(joiner)).toBe(false)
    expect(silent[0]?.aborted).toBe(true)
    expect(guard.size).toBe(4)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({ evicted: 1, maxPending: 4, from: '127.0.0.1 (1)' })
    // the joiner finishes its handshake: it leaves the pending set and is never evicted
    guard.denyInboundEncryptedConnection(undefined as never, joiner)
    expect(guard.size).toBe(3)
  })

  it('never evicts a connection that has sent its handshake bytes, and evicts the oldest silent one instead', () => {
    let now = 0
    const guard = new InboundGuard({ warn: () => {} } as never, 3, 500, () => now)
    const talking = conn(1, 24)
    const silent = [conn(2), conn(3)]
    for (const c of [talking, ...silent]) guard.denyInboundConnection(c)
    now = 1_000
    expect(guard.denyInboundConnection(conn(4))).toBe(false)
    expect(talking.aborted).toBe(false)
    expect(silent[0]?.aborted).toBe(true)
    expect(silent[1]?.aborted).toBe(false)
  })

  it('refuses a new connection while every pending one is within its grace time or talking', () => {
    let now = 0
    const guard = new InboundGuard({ warn: () => {} } as never, 2, 1_000, () => now)
    const first = [conn(1), conn(2)]
    for (const c of first) guard.denyInboundConnection(c)
    now = 500
    expect(guard.denyInboundConnection(conn(3))).toBe(true)
    expect(first.some(c => c.aborted)).toBe(false)
  })

  it('forgets a connection that closed', () => {
    const guard = new InboundGuard({ warn: () => {} } as never, 2)
    const c = conn(1)
    guard.denyInboundConnection(c)
    c.abort(new Error('gone'))
    expect(guard.size).toBe(0)
  })
})
