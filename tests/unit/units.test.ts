import { describe, expect, it } from 'vitest'
import { formatDurationExact, parseDuration } from '../../src/interface/index.ts'

describe('units - durations as the user writes them', () => {
  it('prints whole units without a decimal point or milliseconds', () => {
    expect(formatDurationExact(2000)).toBe('2s')
    expect(formatDurationExact(250)).toBe('250ms')
    expect(formatDurationExact(1500)).toBe('1.5s')
    expect(formatDurationExact(90_000)).toBe('1m30s')
    expect(formatDurationExact(7_200_000)).toBe('2h')
    expect(formatDurationExact(0)).toBe('0s')
  })

  it('reads back as the same duration', () => {
    for (const ms of [1, 999, 1000, 1234, 61_000, 3_600_500, 86_400_000 + 60_000]) expect(parseDuration(formatDurationExact(ms))).toBe(ms)
  })
})
