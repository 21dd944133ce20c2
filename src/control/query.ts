/**
 * Query parameters, checked: a value the endpoint cannot use is a 400 naming the parameter, never silently ignored.
 * An absent parameter is undefined; one given twice is an error, since only one of the values could be honoured.
 */
import { InvalidArgumentError } from '../interface/index.ts'

/** The most a `limit` may ask for: beyond it the number is a mistake, not a request. */
export const QUERY_LIMIT_MAX = 1_000_000

/** The raw value of a parameter given at most once; an empty value is an error too. */
export function queryString (query: URLSearchParams, name: string): string | undefined {
  const all = query.getAll(name)
  if (all.length === 0) return undefined
  if (all.length > 1) throw new InvalidArgumentError(`query parameter ${name} is given ${all.length} times; give it once`)
  const v = all[0] as string
  if (v === '') throw new InvalidArgumentError(`query parameter ${name} is empty; give a value or leave it out`)
  return v
}

/** A whole number written in decimal digits, within [min, max]. */
export function queryInteger (query: URLSearchParams, name: string, range: { min: number, max: number }): number | undefined {
  const raw = queryString(query, name)
  if (raw === undefined) return undefined
  const n = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN
  if (!Number.isSafeInteger(n) || n < range.min || n > range.max) {
    throw new InvalidArgumentError(`query parameter ${name} must be a whole number from ${range.min} to ${range.max}, not ${JSON.stringify(raw)}`)
  }
  return n
}

/** One of the given values. */
export function queryChoice<T extends string> (query: URLSearchParams, name: string, choices: readonly T[]): T | undefined {
  const raw = queryString(query, name)
  if (raw === undefined) return undefined
  if (!(choices as readonly string[]).includes(raw)) throw new InvalidArgumentError(`query parameter ${name} must be one of ${choices.join(', ')}, not ${JSON.stringify(raw)}`)
  return raw as T
}

/** A flag: 1 or true, 0 or false; absent is false. */
export function queryFlag (query: URLSearchParams, name: string): boolean {
  const v = queryChoice(query, name, ['1', 'true', '0', 'false'])
  return v === '1' || v === 'true'
}
