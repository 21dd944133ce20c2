/**
 * The seed corpus (tests/fuzz/corpus/TARGET/): valid inputs of each decoder, and every input that once crashed one
 * (kept as a regression seed). `.bin` files are raw bytes, `.json` files a JSON value, `.txt` files text.
 * `node tests/fuzz/make-corpus.ts` writes the valid seeds again (they are committed, so it is rarely needed).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const CORPUS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'corpus')

function files (target: string, ext: string): string[] {
  const dir = join(CORPUS_DIR, target)
  if (!existsSync(dir)) return []
  return readdirSync(dir).filter(f => f.endsWith(ext)).sort().map(f => join(dir, f))
}

export function seedBytes (target: string): Uint8Array[] {
  return [...files(target, '.bin'), ...files(target, '.txt')].map(f => new Uint8Array(readFileSync(f)))
}

export function seedValues (target: string): unknown[] {
  return files(target, '.json').map(f => JSON.parse(readFileSync(f, 'utf8')) as unknown)
}

export function writeSeed (target: string, name: string, data: Uint8Array | string | object): string {
  const dir = join(CORPUS_DIR, target)
  mkdirSync(dir, { recursive: true })
  const isBytes = data instanceof Uint8Array
  const path = join(dir, `${name}${isBytes ? '.bin' : typeof data === 'string' ? '.txt' : '.json'}`)
  writeFileSync(path, isBytes || typeof data === 'string' ? data : JSON.stringify(data, null, 1) + '\n')
  return path
}
