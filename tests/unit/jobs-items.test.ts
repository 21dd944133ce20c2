import { describe, expect, it } from 'vitest'
import { JOB_CHUNK_ITEMS, JOB_ITEMS_MAX, JOB_ITEM_MAX_BYTES } from '../../proto/index.ts'
import { checkItems, normalizeJob, parseItems } from '../../src/jobs/index.ts'

const node = (n: string): string => n

describe('jobs - items', () => {
  it('refuses items that would not fit the state entry of their chunk, naming them, and takes large ones spread out', () => {
    const big = 'x'.repeat(JOB_ITEM_MAX_BYTES - 2)
    const items = Array.from({ length: JOB_CHUNK_ITEMS * 2 }, (_, i) => i >= JOB_CHUNK_ITEMS ? big : 'small')
    expect(() => { checkItems(items) }).toThrow(new RegExp(`items ${JOB_CHUNK_ITEMS} to ${2 * JOB_CHUNK_ITEMS - 1} add up to more than`))
    // a few large items among small ones fit
    expect(() => { checkItems(Array.from({ length: JOB_CHUNK_ITEMS * 2 }, (_, i) => i % 16 === 0 ? big : 'small')) }).not.toThrow()
  })

  it('reads a JSON array as its values', () => {
    expect(parseItems('[1, "two", {"k": [3]}, null]')).toEqual([1, 'two', { k: [3] }, null])
    expect(parseItems('  \n[ "a" ]\n')).toEqual(['a'])
  })

  it('reads anything else as one string item per line, skipping blank lines', () => {
    expect(parseItems('a b\n{"not": "parsed"}\n\n  c\r\nlast')).toEqual(['a b', '{"not": "parsed"}', '  c', 'last'])
    expect(parseItems('7\n8\n')).toEqual(['7', '8'])
  })

  it('refuses an empty list, a malformed JSON array and a JSON value that is not an array, naming the problem', () => {
    expect(() => parseItems('', 'items.txt')).toThrow(/items.txt: no items/)
    expect(() => parseItems('\n\n')).toThrow(/no items/)
    expect(() => parseItems('[]')).toThrow(/no items/)
    expect(() => parseItems('[1, 2,', 'f.json')).toThrow(/f.json: not a valid JSON array/)
  })

  it('refuses more than the item limit, and an item over the size limit', () => {
    expect(() => checkItems(new Array(JOB_ITEMS_MAX + 1).fill(0))).toThrow(/more than the limit of 1000000/)
    expect(() => checkItems(['x'.repeat(70_000)])).toThrow(/item 0 is 70002 bytes of JSON, over the limit/)
  })
})

describe('jobs - request', () => {
  it('takes results: false (no result events, done without results), true by default, and refuses anything else', () => {
    const resolve = (n: string): string => n
    expect(normalizeJob({ command: ['true'], count: 2 }, resolve).results).toBe(true)
    expect(normalizeJob({ command: ['true'], count: 2, results: false }, resolve).results).toBe(false)
    expect(() => normalizeJob({ command: ['true'], count: 2, results: 'no' }, resolve)).toThrow(/results must be true or false/)
  })

  it('fills defaults: least-loaded, all-success, the run strategy routing knows', () => {
    const r = normalizeJob({ command: ['true'], count: 3 }, node)
    expect(r).toMatchObject({ strategy: 'least-loaded', aggregate: 'all-success', count: 3, detach: false })
    expect(r.spec).toMatchObject({ command: ['true'], strategy: 'least-loaded', retries: 3 })
    expect(normalizeJob({ command: ['true'], count: 1, strategy: 'round-robin' }, node).spec.strategy).toBe('round-robin')
    expect(normalizeJob({ command: ['true'], count: 1, strategy: 'map-reduce', reduce: 'cat' }, node).spec.strategy).toBe('least-loaded')
  })

  it('refuses each mistake of the contract with a message naming it', () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ command: ['true'], count: 1, strategy: 'nope' }, /strategy "nope" is not one of broadcast/],
      [{ command: ['true'], count: 1, aggregate: 'most' }, /aggregate "most" is not one of/],
      [{ command: ['true'], count: 1, reduce: 'cat' }, /reduce is only for the map-reduce strategy/],
      [{ command: ['true'], count: 1, strategy: 'map-reduce' }, /map-reduce needs reduce/],
      [{ command: ['true'], items: [1], strategy: 'broadcast' }, /broadcast .* takes no items/],
      [{ command: ['true'], items: [1], count: 1 }, /items or count, not both/],
      [{ command: ['true'], items: [] }, /no items/],
      [{ command: ['true'] }, /needs items .* or a count/],
      [{ command: ['true'], count: 0 }, /count must be a whole number from 1/],
      [{ command: ['true'], count: 1, maxParallel: 0 }, /maxParallel must be a whole number of 1 or more/],
      [{ command: ['true'], count: 1, stdin: true }, /stdin cannot be streamed/],
      [{ count: 1 }, /exactly one of command/]
    ]
    for (const [body, msg] of bad) expect(() => normalizeJob(body, node)).toThrow(msg)
  })
})
