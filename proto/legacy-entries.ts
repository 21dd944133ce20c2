/**
 * The one-letter entries of the previous release, read and never written. A node restarted on its old data directory
 * loads Yjs updates whose state entries are `{v, h, d?, x?}` (value, stamp, deletion mark 1, expiry) and whose task
 * entries are `{c, e, x}` (coordinator, execution, cancel aspects); peers may relay them from replicas of writers
 * that have not restarted since. Everything that reads a stored entry decodes it here, so the named form
 * (`EntrySchema`, `TaskEntrySchema`) is all the rest of the code sees; a writer rewrites its own legacy entries once,
 * when it loads them (`upgradeEntry`). When no data directory of that release is left, this file goes.
 */
import Type, { type Static } from 'typebox'
import { EntrySchema, StampSchema, type CollectionName, type Entry } from './state.ts'
import { CancelAspectSchema, CoordAspectSchema, ExecAspectSchema, TaskEntrySchema, type TaskEntry } from './tasks.ts'
import { validator } from './validate.ts'

/** A state entry as the previous release wrote it. */
export const LegacyEntrySchema = Type.Object({
  v: Type.Unknown(),
  h: StampSchema,
  d: Type.Optional(Type.Literal(1)),
  x: Type.Optional(Type.Number({ minimum: 0 }))
}, { additionalProperties: false })
export type LegacyEntry = Static<typeof LegacyEntrySchema>

/** An entry as a document may hold it: named, or left by the previous release. */
export type RawEntry = Entry | LegacyEntry
/** What a peer's update may carry: either form (both closed, so a raw entry matches exactly one). */
export const rawEntry = validator(Type.Union([EntrySchema, LegacyEntrySchema]))

/** A task entry as the previous release wrote it. */
export const LegacyTaskEntrySchema = Type.Object({
  c: Type.Optional(CoordAspectSchema),
  e: Type.Optional(ExecAspectSchema),
  x: Type.Optional(CancelAspectSchema)
})
const legacyTaskEntry = validator(LegacyTaskEntrySchema)
const namedTaskEntry = validator(TaskEntrySchema)

function isLegacyEntry (raw: RawEntry): raw is LegacyEntry {
  return !('stamp' in raw)
}

/** The named form of an entry that passed `rawEntry` (or was written here). */
export function decodeEntry (raw: RawEntry): Entry {
  if (!isLegacyEntry(raw)) return raw
  const e: Entry = { value: raw.v, stamp: raw.h }
  if (raw.d === 1) e.deleted = true
  if (raw.x !== undefined) e.expiresAt = raw.x
  return e
}

/** A task entry holds legacy keys and none of the named ones. */
function isLegacyTaskEntry (raw: object): boolean {
  return !('coord' in raw || 'exec' in raw || 'cancel' in raw) && ('c' in raw || 'e' in raw || 'x' in raw)
}

/** The named form of a stored task entry, or undefined when it is malformed in the form it is in. */
export function decodeTaskEntry (raw: unknown): TaskEntry | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined
  if (!isLegacyTaskEntry(raw)) return namedTaskEntry.check(raw) ? raw : undefined
  if (!legacyTaskEntry.check(raw)) return undefined
  const t: TaskEntry = {}
  if (raw.c !== undefined) t.coord = raw.c
  if (raw.e !== undefined) t.exec = raw.e
  if (raw.x !== undefined) t.cancel = raw.x
  return t
}

/**
 * The entry a writer should store instead of `raw` (same stamp, expiry and deletion, so nothing about which entry
 * wins changes), or undefined when `raw` is named through and through already. A `tasks` value is upgraded too.
 */
export function upgradeEntry (collection: CollectionName, raw: RawEntry): Entry | undefined {
  const e = { ...decodeEntry(raw) }
  let changed = isLegacyEntry(raw)
  if (collection === 'tasks' && e.value !== null && typeof e.value === 'object' && isLegacyTaskEntry(e.value)) {
    const t = decodeTaskEntry(e.value)
    if (t !== undefined) { e.value = t; changed = true }
  }
  return changed ? e : undefined
}
