/**
 * What libp2p's "Some configured addresses failed to be listened on" (UnsupportedListenAddressesError, with a stack
 * per address) means for the user: one sentence naming the address and what to pass instead. The library's error is
 * not kept as the cause (every log of the start failure would print its stacks again): its reason for the address,
 * one line, is in the details.
 */
import { PortInUseError, UnavailableError } from '../interface/index.ts'

/** The line of libp2p's message for one address: `  /ip4/0.0.0.0/tcp/7470: Error: listen EADDRINUSE: ...`. */
const ADDRESS_LINE_RE = /^\s*(\/\S+): (?:\w*Error: )?(.*)$/m

/** A typed error saying why this node cannot listen (PORT_IN_USE for a port taken), or undefined when `err` is not a listen failure. */
export function explainListenError (err: unknown): UnavailableError | PortInUseError | undefined {
  const e = err as Error
  if (e?.name !== 'UnsupportedListenAddressesError' && e?.name !== 'UnsupportedListenAddressError') return undefined
  const m = ADDRESS_LINE_RE.exec(e.message)
  const addr = m?.[1]
  const why = m?.[2] ?? e.message.split('\n')[0] ?? ''
  if (addr === undefined) return new UnavailableError(`cannot listen: ${why.split('\n')[0] ?? why}`)
  const port = /\/tcp\/(\d+)/.exec(addr)?.[1]
  const host = /^\/(?:ip4|ip6|dns4|dns6|dns)\/([^/]+)/.exec(addr)?.[1]
  const free = addr.replace(/\/tcp\/\d+/, '/tcp/PORT')
  const o = { details: { address: addr, reason: why.split('\n')[0] ?? why } }
  if (/EADDRINUSE/.test(why)) {
    const hint = `stop what holds it, or pass --listen ${free} with a free PORT (another gridd on this machine? each needs its own --listen, --data-dir and --name: see "Several nodes on one machine" in the README)`
    return new PortInUseError(`port ${port ?? '?'} is in use: another process listens on ${addr}`, { ...o, hint })
  }
  if (/EADDRNOTAVAIL/.test(why)) {
    return new UnavailableError(`cannot listen on ${addr}: ${host ?? 'that address'} is not an address of this machine; pass --listen with one of its addresses, or /ip4/0.0.0.0/tcp/${port ?? 'PORT'} for all`, o)
  }
  if (/EACCES/.test(why)) {
    return new UnavailableError(`cannot listen on ${addr}: permission denied (ports below 1024 need privileges); pass --listen ${free} with a PORT of 1024 or more`, o)
  }
  return new UnavailableError(`cannot listen on ${addr}: ${why.split('\n')[0] ?? why}`, o)
}
