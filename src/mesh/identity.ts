import { existsSync, readFileSync, statSync, chmodSync } from 'node:fs'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { InvalidConfigError } from '../interface/index.ts'
import { writeFileAtomic } from '../util/index.ts'

export const IDENTITY_FILE = 'identity.key'

/**
 * The node's Ed25519 identity: created once in the data directory (mode 0600) and read on every later start, so the
 * peer id survives restarts. A damaged file is an error, never silently replaced (that would change the node's id).
 */
export async function loadOrCreateIdentity (dataDir: string): Promise<{ key: PrivateKey, created: boolean, path: string }> {
  const path = join(dataDir, IDENTITY_FILE)
  if (existsSync(path)) {
    let key: PrivateKey
    try {
      key = privateKeyFromProtobuf(readFileSync(path))
    } catch (err) {
      throw new InvalidConfigError([`identity key ${path} is damaged (${(err as Error).message}); restore it from a backup, or delete it to give this node a new peer id`], { cause: err })
    }
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600)
    return { key, created: false, path }
  }
  const key = await generateKeyPair('Ed25519')
  writeFileAtomic(path, privateKeyToProtobuf(key), 0o600)
  return { key, created: true, path }
}
