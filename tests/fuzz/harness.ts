/**
 * The fuzz harness: a target is one decoder (bytes or JSON from outside this process) with a fast-check arbitrary of
 * its inputs. A run passes when the decoder returns or throws a typed error (a GridError, with its stable code); it
 * fails ("crashes") on any other throw (a TypeError or RangeError escaping), on a run over RUN_MAX_MS, or when the
 * target's own cap check fails (a decoder holding more than its declared limit). Seeded, so every failure replays.
 */
import { getHeapStatistics } from 'node:v8'
import fc from 'fast-check'
import { GridError } from '../../src/interface/index.ts'

/** No single decode may take longer than this (a hang, or quadratic work on a hostile input). */
export const RUN_MAX_MS = 1_000
/**
 * No single decode of an input (at most a few KiB) may grow the heap and external memory by more than this: a decoder
 * that allocates what a length field claims, before checking it, shows here (a garbage collection during the run can
 * only hide growth, never invent it).
 */
export const RUN_ALLOC_MAX_BYTES = 64 * 1024 * 1024

export interface FuzzTarget<T = unknown> {
  /** what `--target` names, and the folder of its corpus */
  name: string
  /** where the decoder lives, for the report */
  decoder: string
  arbitrary: () => fc.Arbitrary<T>
  /** decodes one input; throws only typed errors, or a CapError when it held more than its limit */
  run: (input: T) => void
}

/** A decoder held more than its declared limit: always a crash, whatever its class. */
export class CapError extends Error {
  override name = 'CapError'
}

export function cap (ok: boolean, what: string): void {
  if (!ok) throw new CapError(what)
}

/** A slow run is timed this many times more: only an input slow every time is a crash (not a GC pause or a loaded CPU). */
const SLOW_RETRIES = 2

/** Runs the decoder once: typed errors pass, anything else is rethrown (fast-check records it as the failure). */
export function runOnce<T> (t: FuzzTarget<T>, input: T): void {
  let ms = timed(t, input)
  for (let i = 0; i < SLOW_RETRIES && ms > RUN_MAX_MS; i++) ms = Math.min(ms, timed(t, input))
  if (ms > RUN_MAX_MS) throw new CapError(`one run took ${Math.round(ms)} ms (over ${RUN_MAX_MS} ms), each of ${SLOW_RETRIES + 1} times`)
}

function timed<T> (t: FuzzTarget<T>, input: T): number {
  const before = allocated()
  const started = performance.now()
  try {
    t.run(input)
  } catch (err) {
    if (!(err instanceof GridError) || err instanceof CapError) throw err
  }
  const ms = performance.now() - started
  const grown = allocated() - before
  if (grown > RUN_ALLOC_MAX_BYTES) throw new CapError(`one run grew the heap by ${Math.round(grown / 2 ** 20)} MiB (over ${RUN_ALLOC_MAX_BYTES / 2 ** 20} MiB)`)
  return ms
}

function allocated (): number {
  const h = getHeapStatistics()
  return h.used_heap_size + h.external_memory
}

export interface FuzzReport {
  target: string
  decoder: string
  runs: number
  crashes: number
  seconds: number
  runsPerSecond: number
  /** the shrunk failing input and its error, when it crashed */
  failure?: { seed: number, path: string | undefined, counterexample: string, error: string }
}

export function fuzz<T> (t: FuzzTarget<T>, opts: { runs: number, seed: number }): FuzzReport {
  const started = performance.now()
  const details = fc.check(fc.property(t.arbitrary(), input => { runOnce(t, input) }), { numRuns: opts.runs, seed: opts.seed, endOnFailure: false })
  const seconds = (performance.now() - started) / 1000
  const report: FuzzReport = {
    target: t.name,
    decoder: t.decoder,
    runs: details.numRuns,
    crashes: details.failed ? 1 : 0,
    seconds,
    runsPerSecond: Math.round(details.numRuns / Math.max(seconds, 1e-6))
  }
  if (details.failed) {
    const err = details.errorInstance
    report.failure = {
      seed: details.seed,
      path: details.counterexamplePath ?? undefined,
      counterexample: fc.stringify(details.counterexample).slice(0, 2_000),
      error: err instanceof Error ? `${err.name}: ${err.message}\n${err.stack?.split('\n').slice(1, 6).join('\n') ?? ''}` : String(err)
    }
  }
  return report
}
