/** The parts of xsalsa20 1.2.0 (the swarm-key cipher @libp2p/pnet uses) that src/mesh/pnet-guard.ts touches. */
declare module 'xsalsa20' {
  interface XSalsa20Cipher {
    update: (input: Uint8Array, output?: Uint8Array) => Uint8Array
    finalize: () => void
    /** the WebAssembly-backed state: a view of the one memory every cipher of the process shares */
    _xor: { _memory?: Uint8Array } | null
  }
  interface XSalsa20Constructor {
    (nonce: Uint8Array, key: Uint8Array): XSalsa20Cipher
    prototype: XSalsa20Cipher
  }
  const XSalsa20: XSalsa20Constructor
  export default XSalsa20
}
