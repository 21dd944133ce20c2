/**
 * known_hosts, as OpenSSH reads it: `[marker] patterns keytype base64 [comment]`, where patterns are comma-separated
 * host names or addresses with `*` and `?` wildcards and `!` negation, `[host]:port` for ports other than 22, or one
 * hashed `|1|salt|hmac` entry (HashKnownHosts). `@revoked` lines reject a key; `@cert-authority` lines are skipped
 * (host certificates are not supported, so such hosts need a plain key line).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { InvalidArgumentError } from '../interface/index.ts'

export interface KnownHostEntry {
  file: string
  line: number
  marker: 'revoked' | 'cert-authority' | null
  /** The host field as written (a comma-separated pattern list, or one hashed entry). */
  hosts: string
  keyType: string
  key: Buffer
}

export type HostKeyVerdict =
  | { verdict: 'ok', entry: KnownHostEntry }
  | { verdict: 'unknown', certAuthority: boolean }
  | { verdict: 'changed', known: KnownHostEntry[] }
  | { verdict: 'revoked', entry: KnownHostEntry }

/** Host key algorithms in the order this client prefers them when known_hosts says nothing (OpenSSH's order). */
const DEFAULT_HOST_KEY_ALGORITHMS = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']

/** The name a host's key is filed under: `host` on port 22, else `[host]:port`; HostKeyAlias replaces both. */
export function knownHostsName (host: string, port: number, alias: string | null = null): string {
  if (alias !== null) return alias
  return port === 22 ? host : `[${host}]:${port}`
}

/** OpenSSH's fingerprint: SHA256 of the key blob, base64 without padding. */
export function fingerprint (key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`
}

/** The algorithm name at the start of an SSH public key blob. */
export function keyTypeOf (key: Buffer): string {
  if (key.length < 4) return 'unknown'
  const n = key.readUInt32BE(0)
  return n > 0 && n < 64 && key.length >= 4 + n ? key.subarray(4, 4 + n).toString('latin1') : 'unknown'
}

export class KnownHosts {
  constructor (readonly entries: KnownHostEntry[], readonly files: string[]) {}

  /** Reads the files; a file that does not exist holds no entries. Malformed lines are skipped, as ssh does. */
  static load (files: string[]): KnownHosts {
    const entries: KnownHostEntry[] = []
    const read: string[] = []
    for (const file of files) {
      let text: string
      try {
        text = readFileSync(file, 'utf8')
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
        throw new InvalidArgumentError(`cannot read the known_hosts file ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err })
      }
      read.push(file)
      entries.push(...KnownHosts.parse(text, file))
    }
    return new KnownHosts(entries, read)
  }

  static parse (text: string, file = 'known_hosts'): KnownHostEntry[] {
    const out: KnownHostEntry[] = []
    text.split('\n').forEach((raw, i) => {
      const line = raw.trim()
      if (line === '' || line.startsWith('#')) return
      const fields = line.split(/\s+/)
      let marker: KnownHostEntry['marker'] = null
      if (fields[0] === '@revoked' || fields[0] === '@cert-authority') {
        marker = fields[0] === '@revoked' ? 'revoked' : 'cert-authority'
        fields.shift()
      } else if (fields[0]?.startsWith('@') === true) {
        return
      }
      const [hosts, keyType, b64] = fields
      if (hosts === undefined || keyType === undefined || b64 === undefined || !/^[A-Za-z0-9+/]+=*$/.test(b64)) return
      out.push({ file, line: i + 1, marker, hosts, keyType, key: Buffer.from(b64, 'base64') })
    })
    return out
  }

  /** Entries whose host field matches `name` (see knownHostsName). */
  matching (name: string): KnownHostEntry[] {
    return this.entries.filter(e => hostFieldMatches(e.hosts, name))
  }

  /**
   * Host key algorithms to offer, those of the keys known for this host first, so that a host with several keys
   * presents the one we can check (as OpenSSH does) instead of failing as "changed".
   */
  algorithmsFor (name: string): string[] {
    const known = new Set(this.matching(name).filter(e => e.marker === null).map(e => e.keyType))
    const first: string[] = []
    for (const t of known) {
      if (t === 'ssh-rsa') first.push('rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa')
      else if (DEFAULT_HOST_KEY_ALGORITHMS.includes(t)) first.push(t)
    }
    return [...new Set([...first, ...DEFAULT_HOST_KEY_ALGORITHMS])]
  }

  check (name: string, key: Buffer): HostKeyVerdict {
    const entries = this.matching(name)
    const revoked = this.entries.find(e => e.marker === 'revoked' && e.key.equals(key) && (e.hosts === '*' || hostFieldMatches(e.hosts, name)))
    if (revoked !== undefined) return { verdict: 'revoked', entry: revoked }
    const plain = entries.filter(e => e.marker === null)
    const same = plain.find(e => e.key.equals(key))
    if (same !== undefined) return { verdict: 'ok', entry: same }
    if (plain.length === 0) return { verdict: 'unknown', certAuthority: entries.some(e => e.marker === 'cert-authority') }
    return { verdict: 'changed', known: plain }
  }
}

/** Whether a known_hosts host field (pattern list or hashed entry) matches a name, with OpenSSH's rules. */
export function hostFieldMatches (field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|')
    if (salt === undefined || hash === undefined) return false
    const want = Buffer.from(hash, 'base64')
    const got = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest()
    return want.length === got.length && timingSafeEqual(want, got)
  }
  const lower = name.toLowerCase()
  let matched = false
  for (const raw of field.split(',')) {
    const negated = raw.startsWith('!')
    const pattern = (negated ? raw.slice(1) : raw).toLowerCase()
    if (!globMatch(pattern, lower)) continue
    if (negated) return false
    matched = true
  }
  return matched
}

function globMatch (pattern: string, s: string): boolean {
  if (!pattern.includes('*') && !pattern.includes('?')) return pattern === s
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|\\[\]]/g, c => `\\${c}`).replace(/\*/g, '.*').replace(/\?/g, '.')}$`)
  return re.test(s)
}
