/**
 * Typed facades over the store: the node registry, the session store and forgotten nodes. No module outside state
 * sees a Y.Map; values are checked against their schema when read, so a bad entry from a peer is ignored, not used
 * (a registry entry that fails it, a name with control characters say, is also counted and logged).
 */
import type { Logger } from 'pino'
import { Counter, type Registry } from 'prom-client'
import {
  SESSION_VALUE_MAX_BYTES, forgetValue, registryValue, sessionValue,
  type RegistryValue, type SessionValue
} from '../../proto/index.ts'
import { ConflictError, InvalidArgumentError, NotFoundError, TooLargeError, type NodeId } from '../interface/index.ts'
import type { StoredEntry } from './merged-view.ts'
import type { StateStore } from './store.ts'
import { LogLimiter } from '../util/index.ts'

export const SESSION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,255}$/

/** Sessions this node's own document may hold, and their bytes (config `sessions.maxPerWriter`, `maxBytesPerWriter`). */
export const SESSIONS_MAX_PER_WRITER = 10_000
export const SESSIONS_MAX_BYTES_PER_WRITER = 64 * 1024 * 1024
/** At the cap the tally of this node's sessions is recounted from the store (expired, removed) at most this often. */
const SESSIONS_RECOUNT_EVERY_MS = 1_000
/** An invalid registry entry is logged at most this often per writer. */
const INVALID_LOG_EVERY_MS = 60_000

export interface NodeRegistryComponents {
  logger: Logger
  registry: Registry
}

export class NodeRegistry {
  private readonly invalid?: Counter
  private readonly limiter = new LogLimiter(INVALID_LOG_EVERY_MS)

  constructor (private readonly store: StateStore, private readonly components?: NodeRegistryComponents) {
    if (components === undefined) return
    this.invalid = new Counter({ name: 'grid_state_registry_entries_invalid_total', help: 'Registry entries from peers that fail the schema (a bad node name, say): ignored', registers: [components.registry] })
    store.on('change', e => { if (e.collection === 'registry' && !e.local) this.checkEntry(e.writer, e.key) })
  }

  /** A peer's registry entry that fails the schema is never used (get() skips it); here it is counted and logged. */
  private checkEntry (writer: NodeId, key: string): void {
    const e = this.store.entryOf<unknown>(writer, 'registry', key)
    if (e === undefined || registryValue.check(e.value)) return
    this.invalid?.inc()
    if (this.limiter.allow(writer)) this.components?.logger.warn({ peer: writer, key: key.slice(0, 128), problems: registryValue.problems(e.value, 3) }, 'ignored an invalid registry entry from a peer (logged once a minute per peer)')
  }

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

export interface SessionLimits {
  maxPerWriter: number
  maxBytesPerWriter: number
}

/** This node's own sessions: the size of each (id and stored value as JSON) and their sum. */
interface Usage { sizes: Map<string, number>, bytes: number, at: number }

export class Sessions {
  private readonly limits: SessionLimits
  private usage?: Usage

  constructor (private readonly store: StateStore, limits: Partial<SessionLimits> = {}) {
    this.limits = { maxPerWriter: limits.maxPerWriter ?? SESSIONS_MAX_PER_WRITER, maxBytesPerWriter: limits.maxBytesPerWriter ?? SESSIONS_MAX_BYTES_PER_WRITER }
  }

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
    const size = Buffer.byteLength(id) + Buffer.byteLength(JSON.stringify(v))
    const usage = this.checkRoom(id, size)
    this.store.set('sessions', id, v, { ttlMs: v.ttlMs })
    usage.bytes += size - (usage.sizes.get(id) ?? 0)
    usage.sizes.set(id, size)
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
    const u = this.usage
    if (u !== undefined) { u.bytes -= u.sizes.get(id) ?? 0; u.sizes.delete(id) }
  }

  /**
   * The tally after a write of `size` bytes to `id`, or TooLargeError when it would pass a limit. The tally is kept
   * as this node writes; near a limit it is recounted from the store (sessions expire and are removed elsewhere).
   */
  private checkRoom (id: string, size: number): Usage {
    const over = (u: Usage): string | undefined => {
      const prev = u.sizes.get(id)
      const count = u.sizes.size + (prev === undefined ? 1 : 0)
      if (count > this.limits.maxPerWriter) return `this node holds ${u.sizes.size} sessions, its limit (sessions.maxPerWriter ${this.limits.maxPerWriter})`
      const bytes = u.bytes - (prev ?? 0) + size
      if (bytes > this.limits.maxBytesPerWriter) return `this node's sessions would take ${bytes} bytes, over its limit (sessions.maxBytesPerWriter ${this.limits.maxBytesPerWriter} bytes)`
      return undefined
    }
    let u = this.usage ?? this.recount()
    if (over(u) !== undefined && Date.now() - u.at >= SESSIONS_RECOUNT_EVERY_MS) u = this.recount()
    const why = over(u)
    if (why !== undefined) throw new TooLargeError(`session ${id} not written: ${why}; remove sessions, give them a TTL, or raise the limit`, { details: { maxPerWriter: this.limits.maxPerWriter, maxBytesPerWriter: this.limits.maxBytesPerWriter } })
    return u
  }

  private recount (): Usage {
    const u: Usage = { sizes: new Map(), bytes: 0, at: Date.now() }
    for (const [key, entries] of this.store.groupAll<SessionValue>('sessions')) {
      const own = entries.find(e => e.writer === this.store.selfId)
      if (own === undefined || !sessionValue.check(own.value)) continue
      const size = Buffer.byteLength(key) + Buffer.byteLength(JSON.stringify(own.value))
      u.sizes.set(key, size)
      u.bytes += size
    }
    this.usage = u
    return u
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

  /** True when this node holds documents written by `id` (a member, or a writer that never registered). */
  isWriter (id: NodeId): boolean {
    return this.store.writers().includes(id)
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
