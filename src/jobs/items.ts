/**
 * A job's items as a user gives them (`--items FILE` or `-`): a JSON array, or else one item per line. Pure: the CLI
 * parses a file with it before anything is sent, and the daemon checks what it is sent with `checkItems`.
 */
import { JOB_CHUNK_ITEMS, JOB_CHUNK_MAX_BYTES, JOB_ITEMS_MAX, JOB_ITEM_MAX_BYTES } from '../../proto/job-names.ts'
import { InvalidArgumentError } from '../interface/index.ts'

/**
 * The items of a file's text: a JSON array when the text starts with `[` (a malformed one is an error, not lines),
 * else one item per line, each a string as written (a trailing newline ends the last line; blank lines are skipped).
 */
export function parseItems (text: string, source = 'the items'): unknown[] {
  const body = text.replace(/^\uFEFF/, '')
  let items: unknown[]
  if (body.trimStart().startsWith('[')) {
    let parsed: unknown
    try {
      parsed = JSON.parse(body)
    } catch (err) {
      throw new InvalidArgumentError(`${source}: not a valid JSON array (${(err as Error).message}); give a JSON array or one item per line`)
    }
    if (!Array.isArray(parsed)) throw new InvalidArgumentError(`${source}: not a JSON array`)
    items = parsed
  } else {
    items = body.split(/\r?\n/).filter(line => line.trim() !== '')
  }
  checkItems(items, source)
  return items
}

/**
 * Refuses an empty list, more than JOB_ITEMS_MAX items, an item larger than JOB_ITEM_MAX_BYTES, or a chunk of
 * JOB_CHUNK_ITEMS items larger than JOB_CHUNK_MAX_BYTES (the items are recorded a chunk to a state entry).
 */
export function checkItems (items: unknown[], source = 'items'): void {
  if (items.length === 0) throw new InvalidArgumentError(`${source}: no items (the list is empty)`)
  if (items.length > JOB_ITEMS_MAX) throw new InvalidArgumentError(`${source}: ${items.length} items, more than the limit of ${JOB_ITEMS_MAX}`)
  let chunkBytes = 0
  for (let i = 0; i < items.length; i++) {
    const text = JSON.stringify(items[i])
    if (text === undefined) throw new InvalidArgumentError(`${source}: item ${i} is not JSON`)
    const bytes = Buffer.byteLength(text)
    if (bytes > JOB_ITEM_MAX_BYTES) throw new InvalidArgumentError(`${source}: item ${i} is ${bytes} bytes of JSON, over the limit of ${JOB_ITEM_MAX_BYTES}`)
    if (i % JOB_CHUNK_ITEMS === 0) chunkBytes = 0
    chunkBytes += bytes
    if (chunkBytes > JOB_CHUNK_MAX_BYTES) {
      const first = i - (i % JOB_CHUNK_ITEMS)
      throw new InvalidArgumentError(`${source}: items ${first} to ${Math.min(items.length, first + JOB_CHUNK_ITEMS) - 1} add up to more than ${JOB_CHUNK_MAX_BYTES / 1024} KiB of JSON; a job records its items ${JOB_CHUNK_ITEMS} at a time, at most ${JOB_CHUNK_MAX_BYTES / 1024} KiB each: give smaller items (a file's path rather than its content)`)
    }
  }
}
