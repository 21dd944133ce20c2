import { existsSync, readFileSync, statSync } from 'node:fs'
import { newSwarmKey, parseSwarmKey } from '../../proto/index.ts'
import { NoSwarmKeyError, SwarmKeyError } from '../interface/index.ts'
import { writeFileAtomic } from '../util/index.ts'

export interface SwarmKey {
  /** The normalised key file, as @libp2p/pnet's preSharedKey expects it. */
  psk: Uint8Array
  fingerprint: string
  path: string
  /** Written now, on this start. */
  generated: boolean
  /** Group or others may read it: worth a warning. */
  loosePermissions: boolean
}

/**
 * Reads the swarm key. When it is missing and `generate` is set (the default path, on a first start), writes a new
 * one (mode 0600); otherwise a missing key is an error, since the key is required.
 */
export function loadSwarmKey (path: string, generate: boolean): SwarmKey {
  if (!existsSync(path)) {
    if (!generate) {
      throw new NoSwarmKeyError(`no swarm key at ${path} (--swarm-key, GRID_SWARM_KEY or swarmKey names it, so none is generated)`, {
        hint: `copy the cluster's swarm key there from any member (its data dir's swarm.key), or create one for a new cluster with \`gridctl keygen ${path}\``
      })
    }
    const bytes = newSwarmKey()
    writeFileAtomic(path, bytes, 0o600)
    return { ...parseSwarmKey(bytes, path), path, generated: true, loosePermissions: false }
  }
  let bytes: Uint8Array
  try {
    bytes = readFileSync(path)
  } catch (err) {
    throw new SwarmKeyError(`swarm key ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err })
  }
  return { ...parseSwarmKey(bytes, path), path, generated: false, loosePermissions: (statSync(path).mode & 0o077) !== 0 }
}
