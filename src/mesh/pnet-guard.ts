/**
 * A guard around the swarm-key cipher. @libp2p/pnet 3.0.27 encrypts every connection with xsalsa20 1.2.0, whose
 * ciphers share one WebAssembly memory and each keep a view of it. An input bigger than that memory (a large frame;
 * the first is about 600 KiB) grows it, and every other cipher's view goes stale; each of those then grows the memory
 * again by the whole size of its next input, and after about a thousand messages the memory reaches its 64 MB cap and
 * the next message throws inside a socket handler: the daemon dies. (js-libp2p #3585 fixes this in pnet by feeding
 * the cipher in chunks; no release with it was available here.)
 *
 * The guard feeds each cipher at most CHUNK bytes at a time (a stream cipher: slices give the same bytes as one call),
 * so the memory does not need to grow, and gives a cipher whose view went stale the current one, so when the memory
 * does grow (each cipher ever created takes 64 bytes of it) it grows once, by what is needed.
 */
import XSalsa20 from 'xsalsa20'

const CHUNK = 64 * 1024
let installed = false

export function guardSwarmKeyCipher (): void {
  if (installed) return
  installed = true
  const update = XSalsa20.prototype.update
  let current: ArrayBuffer | undefined
  XSalsa20.prototype.update = function (this: typeof XSalsa20.prototype, input: Uint8Array, output: Uint8Array = new Uint8Array(input.length)): Uint8Array {
    const fresh = (): void => {
      const view = this._xor?._memory
      if (view === undefined || this._xor === null) return
      if (view.byteLength === 0 && current !== undefined && current.byteLength > 0) this._xor._memory = new Uint8Array(current)
    }
    for (let at = 0; at < input.length; at += CHUNK) {
      fresh()
      update.call(this, input.subarray(at, at + CHUNK), output.subarray(at, at + CHUNK))
      const view = this._xor?._memory
      if (view !== undefined && view.byteLength > 0) current = view.buffer as ArrayBuffer
    }
    return output
  }
}
