/**
 * Typed facades over the store: the node registry, the session store and forgotten nodes. No module outside state
 * sees a Y.Map; values are checked against their schema when read, so a bad entry from a peer is ignored, not used.
 */
import {
  SESSION_VALUE_MAX_BYTES, forgetValue, registryValue, sessionValue,
  type RegistryValue, type SessionValue
} from '../../proto/index.ts'
import { ConflictError, InvalidArgumentError, NotFoundError, TooLargeError, type NodeId } from '../interface/index.ts'
import type { StoredEntry } from './merged-view.ts'
import type { StateStore } from './store.ts'

export const SESSION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,255}$/

export class NodeRegistry {
  constructor (private readonly store: StateStore) {}

  /** Writes this node's own facts (only a node writes its own entry). */
  publish (facts: RegistryValue): void {
    this.store.set('registry', this.store.selfId, facts)
  }

  get (id: NodeId): StoredEntry<RegistryValue> | undefined {
    const e = this.store.entryOf<RegistryValue>(id, 'registry', id)
    return e !== undefined && registryValue.check(e.value) ? e : undefined
  }

  /** Every registered node, by id. */
  list (): Map<NodeId, StoredEntry<RegistryValue>> {
    const out = new Map<NodeId, StoredEntry<RegistryValue>>()
    for (const w of this.store.writers()) {
      const e = this.get(w)
      if (e !== undefined) out.set(w, e)
    }
    return out
  }
}

export interface SessionRecord {
  id: string
  value: unknown
  owner: string | null
  createdAt: string
  updatedAt: string
  ttlMs: number | null
  expiresAt: string | null
  /** the node whose write is current */
  writer: string
  worker?: unknown
}

export class Sessions {
  constructor (private readonly store: StateStore) {}

  put (id: string, value: unknown, opts: { ttlMs?: number | null, owner?: NodeId | null, worker?: unknown } = {}): SessionRecord {
    checkSessionId(id)
    const text = JSON.stringify(value)
    if (text === undefined) throw new InvalidArgumentError('session value must be JSON')
    const bytes = Buffer.byteLength(text)
    if (bytes > SESSION_VALUE_MAX_BYTES) throw new TooLargeError(`session value is ${bytes} bytes; the limit is ${SESSION_VALUE_MAX_BYTES} bytes (${SESSION_VALUE_MAX_BYTES / 1024} KiB) of JSON`)
    const now = Date.now()
    const prev = this.getEntry(id)
    const v: SessionValue = {
      value: JSON.parse(text) as unknown,
      owner: opts.owner !== undefined ? opts.owner : (prev?.value.owner ?? null),
      createdAt: prev?.value.createdAt ?? now,
      updatedAt: now,
      ttlMs: opts.ttlMs !== undefined ? opts.ttlMs : (prev?.value.ttlMs ?? null)
    }
    const worker = opts.worker !== undefined ? opts.worker : prev?.value.worker
    if (worker !== undefined) v.worker = worker
    this.store.set('sessions', id, v, { ttlMs: v.ttlMs })
    return toRecord(id, v, this.store.selfId, v.ttlMs === null ? undefined : now + v.ttlMs)
  }

  get (id: string): SessionRecord | undefined {
    const e = this.getEntry(id)
    return e === undefined ? undefined : toRecord(id, e.value, e.writer, e.expiresAt)
  }

  require (id: string): SessionRecord {
    const s = this.get(id)
    if (s === undefined) throw new NotFoundError(`no session ${id}`)
    return s
  }

  list (): SessionRecord[] {
    const out: SessionRecord[] = []
    for (const [id, e] of this.store.entries<SessionValue>('sessions')) {
      if (sessionValue.check(e.value)) out.push(toRecord(id, e.value, e.writer, e.expiresAt))
    }
    return out.sort((a, b) => a.id.localeCompare(b.id))
  }

  remove (id: string): void {
    checkSessionId(id)
    if (!this.store.delete('sessions', id)) throw new NotFoundError(`no session ${id}`)
  }

  private getEntry (id: string): StoredEntry<SessionValue> | undefined {
    const e = this.store.lookup<SessionValue>('sessions', id)
    return e !== undefined && sessionValue.check(e.value) ? e : undefined
  }
}

export class ForgottenNodes {
  constructor (private readonly store: StateStore) {}

  /** Removes a node from the cluster's records everywhere (its documents too), unless it writes again later. */
  forget (id: NodeId): void {
    if (id === this.store.selfId) throw new ConflictError('a node cannot forget itself; run gridctl nodes forget on another node after stopping this one')
    this.store.set('forgotten', id, { at: Date.now(), by: this.store.selfId })
  }

  /** When this node was forgotten: the stamp to outrun by writing the registry entry again. */
  isForgotten (id: NodeId): boolean {
    const e = this.store.lookup('forgotten', id)
    return e !== undefined && forgetValue.check(e.value)
  }
}

function checkSessionId (id: string): void {
  if (!SESSION_ID_PATTERN.test(id)) throw new InvalidArgumentError(`session id ${JSON.stringify(id.slice(0, 80))} must be 1-256 letters, digits and ._:@- starting with a letter or digit`)
}

function toRecord (id: string, v: SessionValue, writer: string, expiresAt: number | undefined): SessionRecord {
  const r: SessionRecord = {
    id,
    value: v.value,
    owner: v.owner,
    createdAt: new Date(v.createdAt).toISOString(),
    updatedAt: new Date(v.updatedAt).toISOString(),
    ttlMs: v.ttlMs,
    expiresAt: expiresAt === undefined ? null : new Date(expiresAt).toISOString(),
    writer
  }
  if (v.worker !== undefined) r.worker = v.worker
  return r
}
