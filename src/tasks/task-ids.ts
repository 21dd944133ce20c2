/** Task ids: time-ordered and unique without coordination. */
import { randomBytes } from 'node:crypto'

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'

/** `t` + 9 base32 characters of milliseconds + 8 random ones. */
export function newTaskId (now = Date.now()): string {
  let t = ''
  let n = now
  for (let i = 0; i < 9; i++) { t = ALPHABET[n % 32] + t; n = Math.floor(n / 32) }
  const r = randomBytes(5)
  let rnd = ''
  let bits = 0
  let acc = 0
  for (const b of r) {
    acc = (acc << 8) | b
    bits += 8
    while (bits >= 5) { rnd += ALPHABET[(acc >> (bits - 5)) & 31]; bits -= 5 }
  }
  return `t${t}${rnd}`
}
