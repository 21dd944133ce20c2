/**
 * The fuzz targets (tests/fuzz/targets.ts) in a short seeded run: every decoder of outside bytes or JSON either
 * returns or throws a typed error, within its caps, on a few thousand hostile inputs each (the long runs are
 * `npm run fuzz`). Then the defects fuzzing found, each pinned by the input that showed it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { Packr } from 'msgpackr'
import { afterAll, describe, expect, it } from 'vitest'
import { RpcFrameDecoder } from '../../proto/index.ts'
import { loadConfig } from '../../src/config/index.ts'
import { GridError, ProtocolError } from '../../src/interface/index.ts'
import { StateFiles } from '../../src/state/persistence.ts'
import { fuzz } from '../fuzz/harness.ts'
import { TARGETS, cleanUp } from '../fuzz/targets.ts'

/** Runs per target: the file-backed ones (a write and a read per run) get fewer. */
const RUNS: Record<string, number> = { wal: 300, config: 300 }
const SEED = 20_261_202

const dirs: string[] = []
const dir = (): string => { const d = mkdtempSync(join(tmpdir(), 'grid-fuzz-unit-')); dirs.push(d); return d }
afterAll(() => { cleanUp(); for (const d of dirs) rmSync(d, { recursive: true, force: true }) })

describe('fuzz - every decoder of outside input', () => {
  for (const t of TARGETS) {
    it(`${t.name} returns or throws a typed error on hostile input`, () => {
      const r = fuzz(t, { runs: RUNS[t.name] ?? 2_000, seed: SEED })
      expect(r.failure, JSON.stringify(r.failure, null, 1)).toBeUndefined()
      expect(r.runs).toBe(RUNS[t.name] ?? 2_000)
    })
  }
})

describe('fuzz - caps', () => {
  it('refuses a frame whose prefix claims 4 GiB on the prefix alone, holding nothing', () => {
    const dec = new RpcFrameDecoder(16 * 1024 * 1024)
    // varint of 2^32, then a few body bytes
    const bytes = new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x10, 1, 2, 3])
    let err: unknown
    try { [...dec.push(bytes)] } catch (e) { err = e }
    expect(err).toBeInstanceOf(GridError)
    expect((err as GridError).code).toBe('PROTOCOL')
    expect(dec.expected).toBe(0)
  })
})

describe('fuzz - defects found', () => {
  it('a config file with an alias to no anchor is an invalid configuration, not a ReferenceError', () => {
    // input found by the config target: "*\0"
    const d = dir()
    const file = join(d, 'gridd.yaml')
    writeFileSync(file, Buffer.from([42, 0]))
    let err: unknown
    try { loadConfig({ configFile: file, env: { GRID_DATA_DIR: d } }) } catch (e) { err = e }
    expect((err as GridError).code).toBe('INVALID_CONFIG')
    expect((err as Error).message).toContain('not valid YAML')
  })

  const packr = new Packr({ useRecords: false, mapsAsObjects: true })

  it('a torn snapshot stops the start with a typed error naming the file, not a msgpack error', async () => {
    const d = dir()
    const f = new StateFiles(d)
    f.load()
    await f.compact([{ w: 'a', g: 1, u: new Uint8Array([1, 2]) }], { clean: true })
    await f.close()
    const whole = packr.pack({ version: 2, records: [{ w: 'a', g: 1, n: 0, u: new Uint8Array([1, 2]), s: new Uint8Array(64) }], clean: true })
    writeFileSync(f.snapshotPath, whole.subarray(0, whole.byteLength - 5))
    expect(() => new StateFiles(d).load()).toThrow(expect.objectContaining({ code: 'INTERNAL', message: expect.stringContaining('snapshot.bin is corrupt') }))
  })

  it('a snapshot that holds what is not records is refused at load, before anything applies it', () => {
    const d = dir()
    const f = new StateFiles(d)
    f.load()
    writeFileSync(f.snapshotPath, packr.pack({ version: 2, records: [{ w: 'a', g: 1, u: 'not bytes' }] }))
    expect(() => new StateFiles(d).load()).toThrow(expect.objectContaining({ code: 'INTERNAL', message: expect.stringContaining('records') }))
  })

  it('a log frame whose checksum holds but which is not records is cut like a torn tail', async () => {
    const d = dir()
    const f = new StateFiles(d)
    f.load()
    await f.append([{ w: 'a', g: 0, u: new Uint8Array([1]) }])
    await f.append([{ w: 7, g: 'x', u: null } as never])
    await f.close()
    const loaded = new StateFiles(d).load()
    expect(loaded.wal.map(r => r.w)).toEqual(['a'])
    expect(loaded.truncatedBytes).toBeGreaterThan(0)
  })
})

describe('fuzz - the harness', () => {
  it('counts as a crash a decoder that allocates what its input claims before checking it', () => {
    const r = fuzz({
      name: 'greedy',
      decoder: 'a decoder that trusts a length field',
      arbitrary: () => fc.constant(new Uint8Array([0xff, 0xff, 0xff, 0x0f])),
      run: b => { const n = (b[0] as number) | (b[1] as number) << 8 | (b[2] as number) << 16 | (b[3] as number) << 24; const held = new Uint8Array(n >>> 1); held[0] = 1 }
    }, { runs: 1, seed: 1 })
    expect(r.crashes).toBe(1)
    expect(r.failure?.error).toMatch(/grew the heap/)
  })

  it('counts as a crash an untyped error, and passes a typed one', () => {
    const untyped = fuzz({ name: 'untyped', decoder: '-', arbitrary: () => fc.constant(1), run: () => { throw new TypeError('x is undefined') } }, { runs: 1, seed: 1 })
    const typed = fuzz({ name: 'typed', decoder: '-', arbitrary: () => fc.constant(1), run: () => { throw new ProtocolError('bad frame') } }, { runs: 5, seed: 1 })
    expect([untyped.crashes, typed.crashes]).toEqual([1, 0])
  })
})
