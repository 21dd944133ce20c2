/**
 * Replicated state on the wire: Yjs updates of per-writer documents (pushed by their writer to its peers), state-vector
 * catch-up (RPC), and the shapes of the entries those documents hold.
 *
 * Every node writes only its own document (one per writer, in generations); entries are
 * `{value, stamp, deleted?, expiresAt?}`: the value, its hybrid-logical-clock stamp `[ms, counter]`, a deletion mark,
 * an expiry time (ms since the epoch). Documents persisted by the previous release hold one-letter entries: those are
 * read through `legacy-entries.ts` only.
 */
import Type, { type Static } from 'typebox'
import { LoadSchema, NodeNameSchema } from './membership.ts'
import { method } from './rpc.ts'
import { Bytes, validator } from './validate.ts'

const NodeId = Type.String({ minLength: 1, maxLength: 128 })
const Gen = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })
const Ms = Type.Number({ minimum: 0 })

/** The collections every writer document holds, as top-level Y.Maps. */
export const COLLECTIONS = ['registry', 'sessions', 'tasks', 'forgotten', 'jobs', 'workflows'] as const
export type CollectionName = typeof COLLECTIONS[number]

/**
 * One writer's Yjs update, pushed by the writer itself to each peer it is connected to (RPC notification
 * `state.push`); peers that are not connected get it through catch-up.
 */
export const StateUpdateSchema = Type.Object({
  w: NodeId,
  g: Gen,
  u: Bytes,
  /** the record's sequence number in its generation (absent on a nudge: an empty update asking for catch-up) */
  n: Type.Optional(Gen),
  /** the writer's signature over (w, g, n, u) with its libp2p key (absent on a nudge; refused on anything else) */
  s: Type.Optional(Bytes)
})
export type StateUpdate = Static<typeof StateUpdateSchema>

/**
 * One writer document as a peer holds it: generation and `n`, the lowest sequence number of that generation's signed
 * records it lacks (it holds every record below). `sv` (a Yjs state vector) was sent by the previous release.
 */
export const DocSummarySchema = Type.Object({ g: Gen, n: Type.Optional(Gen), sv: Type.Optional(Bytes) })
export type DocSummary = Static<typeof DocSummarySchema>

/** RPC `state.sync`: "here is what I hold; send what I lack" (y-protocols' step 1; the answer is step 2). */
export const SyncRequestSchema = Type.Object({
  docs: Type.Record(Type.String(), DocSummarySchema),
  /** answer with at most this many bytes of records (capped at STATE_SYNC_CHUNK_BYTES); `more` says to ask again */
  maxBytes: Type.Optional(Type.Integer({ minimum: 1024 }))
})
export const SyncResponseSchema = Type.Object({
  updates: Type.Array(StateUpdateSchema),
  /** the generation the responder holds of every writer document */
  gens: Type.Record(Type.String(), Gen),
  /** the `n` the responder holds of each of those generations (every record below it) */
  next: Type.Optional(Type.Record(Type.String(), Gen)),
  more: Type.Boolean()
})
export type SyncResponse = Static<typeof SyncResponseSchema>
export const StateSync = method('state.sync', SyncRequestSchema, SyncResponseSchema)
export const StatePush = method('state.push', StateUpdateSchema, Type.Null())

/** A hybrid-logical-clock stamp: `[ms, counter]`. */
export const StampSchema = Type.Tuple([Ms, Type.Integer({ minimum: 0 })])

/** The envelope of every entry in a writer document's maps (the only form written). */
export const EntrySchema = Type.Object({
  value: Type.Unknown(),
  stamp: StampSchema,
  /** a deletion mark: the key is gone cluster-wide (value is null) */
  deleted: Type.Optional(Type.Literal(true)),
  /** ms since the epoch; the entry is gone on every node from then on */
  expiresAt: Type.Optional(Ms)
}, { additionalProperties: false })
export type Entry = Static<typeof EntrySchema>
export const entry = validator(EntrySchema)

const Labels = Type.Record(Type.String({ maxLength: 63 }), Type.String({ maxLength: 128 }))

/** A node's static facts: the registry entry it writes about itself. */
export const RegistryValueSchema = Type.Object({
  /** the node's name (NODE_NAME_PATTERN): an entry with another is ignored, counted and logged */
  name: NodeNameSchema,
  addrs: Type.Array(Type.String({ maxLength: 512 }), { maxItems: 64 }),
  region: Type.String({ maxLength: 63 }),
  labels: Labels,
  capabilities: Type.Array(Type.String({ maxLength: 64 }), { maxItems: 128 }),
  gpus: Type.Array(Type.Object({
    index: Type.Integer({ minimum: 0 }),
    uuid: Type.String({ maxLength: 128 }),
    name: Type.String({ maxLength: 128 }),
    memoryTotalMiB: Type.Number({ minimum: 0 })
  }), { maxItems: 64 }),
  version: Type.String({ maxLength: 32 }),
  drain: Type.Boolean(),
  joinedAt: Ms,
  updatedAt: Ms,
  /** set by a graceful stop */
  leftAt: Type.Optional(Ms),
  /** task types this node's configuration defines */
  taskTypes: Type.Optional(Type.Array(Type.String({ maxLength: 63 }), { maxItems: 256 })),
  /** the task types that have warm workers here */
  workerTypes: Type.Optional(Type.Array(Type.String({ maxLength: 63 }), { maxItems: 256 }))
})
export type RegistryValue = Static<typeof RegistryValueSchema>
export const registryValue = validator(RegistryValueSchema)

/** Largest session value, as JSON text. */
export const SESSION_VALUE_MAX_BYTES = 64 * 1024

export const SessionValueSchema = Type.Object({
  value: Type.Unknown(),
  owner: Type.Union([NodeId, Type.Null()]),
  createdAt: Ms,
  updatedAt: Ms,
  /** ms; null for no expiry */
  ttlMs: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]),
  /** details a warm worker's node adds (issue: warm workers) */
  worker: Type.Optional(Type.Unknown())
})
export type SessionValue = Static<typeof SessionValueSchema>
export const sessionValue = validator(SessionValueSchema)

/** "Forget node X": node X's documents are dropped everywhere unless X writes again after this. */
export const ForgetValueSchema = Type.Object({ at: Ms, by: NodeId })
export const forgetValue = validator(ForgetValueSchema)

export { LoadSchema }
