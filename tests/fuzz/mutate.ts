/**
 * Input shapes shared by the targets: random bytes, byte-level mutations of a valid corpus (flip, insert, delete,
 * truncate, duplicate a range, overwrite with a boundary value), and structure-aware mutations of valid JSON values
 * (a field replaced by anything, dropped, or added), so that inputs reach past a decoder's first check.
 */
import fc from 'fast-check'

type Op =
  | { k: 'flip', at: number, bit: number }
  | { k: 'set', at: number, byte: number }
  | { k: 'insert', at: number, bytes: Uint8Array }
  | { k: 'delete', at: number, n: number }
  | { k: 'truncate', at: number }
  | { k: 'dup', at: number, n: number }

const BOUNDARY = [0x00, 0x7f, 0x80, 0xff, 0xc0, 0xc1, 0xd9, 0xdb, 0xdd, 0xdf, 0xc6, 0xc7, 0xcf, 0xd3, 0xcb]

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ k: fc.constant('set' as const), at: fc.nat(), byte: fc.oneof(fc.constantFrom(...BOUNDARY), fc.nat(255)) }),
  fc.record({ k: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ k: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ k: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ k: fc.constant('dup' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 32 }) })
)

function apply (input: Uint8Array, ops: Op[]): Uint8Array {
  let b = input
  for (const o of ops) {
    const at = b.byteLength === 0 ? 0 : o.at % (b.byteLength + 1)
    switch (o.k) {
      case 'flip': if (at < b.byteLength) { b = b.slice(); b[at] = (b[at] as number) ^ (1 << o.bit) } break
      case 'set': if (at < b.byteLength) { b = b.slice(); b[at] = o.byte } break
      case 'insert': b = concat(b.subarray(0, at), o.bytes, b.subarray(at)); break
      case 'delete': b = concat(b.subarray(0, at), b.subarray(at + o.n)); break
      case 'truncate': b = b.subarray(0, at); break
      case 'dup': b = concat(b.subarray(0, at + o.n), b.subarray(at, at + o.n), b.subarray(at + o.n)); break
    }
  }
  return b
}

function concat (...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let off = 0
  for (const p of parts) { out.set(p, off); off += p.byteLength }
  return out
}

/** A seed from the corpus with 0-8 byte-level mutations. */
export function mutatedBytes (seeds: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  if (seeds.length === 0) return fc.uint8Array({ maxLength: 256 })
  return fc.tuple(fc.constantFrom(...seeds), fc.array(op, { maxLength: 8 })).map(([s, ops]) => apply(s, ops))
}

/** Bytes from outside: mostly mutated seeds, some random, some seeds as they are. */
export function hostileBytes (seeds: Uint8Array[], maxLength = 512): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { arbitrary: mutatedBytes(seeds), weight: 6 },
    { arbitrary: fc.uint8Array({ maxLength }), weight: 2 },
    { arbitrary: seeds.length === 0 ? fc.uint8Array() : fc.constantFrom(...seeds), weight: 1 }
  )
}

/** A JSON-ish value replaced somewhere inside by anything, a field dropped or a field added. */
export function mutatedValue (seeds: unknown[]): fc.Arbitrary<unknown> {
  const anything = fc.oneof(
    fc.anything({ maxDepth: 2, maxKeys: 4, withNullPrototype: true, withBigInt: true, withTypedArray: true, withSparseArray: true }),
    fc.constantFrom(-1, 0, 1.5, 2 ** 31, 2 ** 53, -(2 ** 53), Number.NaN, Infinity, '', 'x'.repeat(70), '../../etc', '\u0000', [], {}, null, true, '__proto__')
  )
  return fc.tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.nat(3), fc.string({ maxLength: 12 }), anything), { maxLength: 4 }))
    .map(([seed, edits]) => {
      let v = structuredClone(seed)
      for (const [pick, kind, key, value] of edits) v = edit(v, pick, kind, key, cloneOf(value))
      return v
    })
}

/** Walks to the `pick`-th container (depth-first) and replaces, drops or adds one field there. */
function edit (root: unknown, pick: number, kind: number, key: string, value: unknown): unknown {
  const containers: Array<Record<string, unknown> | unknown[]> = []
  const seen = new Set<unknown>()
  const walk = (v: unknown): void => {
    if (v === null || typeof v !== 'object' || ArrayBuffer.isView(v) || seen.has(v)) return
    seen.add(v)
    containers.push(v as Record<string, unknown>)
    for (const c of Object.values(v)) walk(c)
  }
  walk(root)
  if (containers.length === 0) return value
  const c = containers[pick % containers.length] as Record<string, unknown>
  const keys = Object.keys(c)
  // an array gets an index (its `length` is not a field to set), an object any key
  const k = Array.isArray(c) ? String(kind === 3 ? pick % (c.length + 2) : pick % Math.max(1, c.length)) : kind === 3 || keys.length === 0 ? key : keys[pick % keys.length] as string
  if (kind === 2) delete c[k]
  else c[k] = value
  return root
}

/** A fresh copy (generated values may be shared between runs: an edit must never change one in place). */
function cloneOf (v: unknown): unknown {
  try { return structuredClone(v) } catch { return v }
}
