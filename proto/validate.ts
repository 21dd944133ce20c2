/** Runtime validators built from the TypeBox schemas, with one short message naming the first wrong fields. */
import Type, { type TSchema, type Static } from 'typebox'
import { Compile } from 'typebox/compile'
import { ProtocolError, InvalidArgumentError } from '../src/interface/index.ts'

export interface Validator<T extends TSchema> {
  schema: T
  check(value: unknown): value is Static<T>
  /** A readable list of what is wrong (at most `max` entries), empty when valid. */
  problems(value: unknown, max?: number): string[]
  /** Returns the value typed, or throws ProtocolError (for peer input) naming what is wrong. */
  parsePeer(value: unknown, what: string): Static<T>
  /** Returns the value typed, or throws InvalidArgumentError (for user input) naming what is wrong. */
  parseUser(value: unknown, what: string): Static<T>
}

export function validator<T extends TSchema> (schema: T): Validator<T> {
  // compiled on first use: a daemon defines every wire schema but checks only the ones its traffic needs, and each
  // compiled checker is generated code held for the process's life (compiling all of them at start-up cost ~20 MB)
  let compiledOnce: ReturnType<typeof Compile<T>> | undefined
  const compiled = (): ReturnType<typeof Compile<T>> => (compiledOnce ??= Compile(schema))
  const problems = (value: unknown, max = 5): string[] => {
    const out: string[] = []
    const seen = new Set<string>()
    for (const e of compiled().Errors(value)) {
      // unions report one error per branch and then "must match a schema in anyOf": keep the summary only
      if (e.keyword === 'const' && e.schemaPath.includes('anyOf')) continue
      const path = e.instancePath === '' ? '(root)' : e.instancePath.slice(1).replace(/\//g, '.')
      let msg = e.message
      if (e.keyword === 'anyOf') msg = 'is not one of the allowed values'
      if (e.keyword === 'additionalProperties') {
        const extra = (e.params as { additionalProperties?: string[] }).additionalProperties
        msg = `has unknown field${extra !== undefined && extra.length > 1 ? 's' : ''} ${extra?.join(', ') ?? ''}`
      }
      if (e.keyword === 'boolean') continue
      const line = `${path} ${msg}`
      if (seen.has(line)) continue
      seen.add(line)
      out.push(line)
      if (out.length >= max) break
    }
    return out
  }
  return {
    schema,
    check: (value: unknown): value is Static<T> => compiled().Check(value),
    problems,
    parsePeer (value, what) {
      if (compiled().Check(value)) return value
      throw new ProtocolError(`invalid ${what}: ${problems(value, 3).join('; ')}`)
    },
    parseUser (value, what) {
      if (compiled().Check(value)) return value
      throw new InvalidArgumentError(`invalid ${what}: ${problems(value, 5).join('; ')}`)
    }
  }
}

/** Binary data (msgpack decodes it as a Buffer, which is a Uint8Array). */
export const Bytes = Type.Refine(Type.Unsafe<Uint8Array>({}), (v: unknown) => v instanceof Uint8Array)
