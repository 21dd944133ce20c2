import { describe, expect, it } from 'vitest'
import { PortInUseError } from '../../src/interface/index.ts'
import { explainListenError } from '../../src/mesh/listen-error.ts'

/** libp2p's error, as its transport manager builds it (a stack per address). */
function libp2pError (addr: string, cause: string): Error {
  const e = new Error('Some configured addresses failed to be listened on, you may need to remove one or more listen addresses from your configuration or set `transportManager.faultTolerance` to NO_FATAL:\n' +
    `\n  ${addr}: Error: ${cause}\n      at Server.setupListenHandle [as _listen2] (node:net:2328:16)\n      at listenInCluster (node:net:2437:12)\n`)
  e.name = 'UnsupportedListenAddressesError'
  return e
}

describe('mesh - a listen address that fails', () => {
  it('names the port in use (PORT_IN_USE) and, as its hint, the flag to pass', () => {
    const e = explainListenError(libp2pError('/ip4/0.0.0.0/tcp/7470', 'listen EADDRINUSE: address already in use 0.0.0.0:7470'))
    expect(e).toBeInstanceOf(PortInUseError)
    expect(e?.code).toBe('PORT_IN_USE')
    expect(e?.message).toBe('port 7470 is in use: another process listens on /ip4/0.0.0.0/tcp/7470')
    expect(e?.hint).toMatch(/^stop what holds it, or pass --listen \/ip4\/0\.0\.0\.0\/tcp\/PORT with a free PORT/)
    expect(e?.message).not.toMatch(/setupListenHandle|NO_FATAL/)
    // the library's error, stacks and all, is not carried along into the start failure's logs
    expect(e?.cause).toBeUndefined()
    expect(e?.details).toEqual({ address: '/ip4/0.0.0.0/tcp/7470', reason: 'listen EADDRINUSE: address already in use 0.0.0.0:7470' })
  })

  it('says an address is not this machine\'s, and a low port needs privileges', () => {
    expect(explainListenError(libp2pError('/ip4/203.0.113.1/tcp/1', 'listen EADDRNOTAVAIL: address not available 203.0.113.1:1'))?.message)
      .toMatch(/^cannot listen on \/ip4\/203\.0\.113\.1\/tcp\/1: 203\.0\.113\.1 is not an address of this machine/)
    expect(explainListenError(libp2pError('/ip4/0.0.0.0/tcp/80', 'listen EACCES: permission denied 0.0.0.0:80'))?.message)
      .toMatch(/permission denied \(ports below 1024 need privileges\); pass --listen \/ip4\/0\.0\.0\.0\/tcp\/PORT/)
  })

  it('leaves other errors alone', () => {
    expect(explainListenError(new Error('boom'))).toBeUndefined()
  })
})
