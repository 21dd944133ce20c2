import { describe, expect, it } from 'vitest'
import { formatLoad, knobKey, parseMedians, parsePeers, PEERS } from '../../bench/peers/parse.ts'

describe('bench peers - which peers --peers names', () => {
  it('takes every peer by default, for all or an empty list, and none for none', () => {
    expect(parsePeers(undefined)).toEqual([...PEERS])
    expect(parsePeers('all')).toEqual([...PEERS])
    expect(parsePeers(' ')).toEqual([...PEERS])
    expect(parsePeers('none')).toEqual([])
  })

  it('takes a comma list once each, and refuses a name it does not know, naming the known ones', () => {
    expect(parsePeers('slurm, dask,slurm')).toEqual(['slurm', 'dask'])
    expect(() => parsePeers('dask,celery')).toThrow(/unknown peer celery.*bullmq, dask, slurm/)
  })
})

describe('bench peers - a script\'s summary', () => {
  const out = [
    'PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST',
    '== Slurm 22.05.8: slurmctld + 3 slurmd (CPUs=4 each) on one machine',
    'srun_lat_p50_ms                median=     191.749  runs=191.749',
    'array_tasks_per_s              median=      12.497  runs=12.497, 13.001',
    'wide_overhead_ms               median=      -1.500  runs=-1.500',
    'fo_kill_to_first_rerun_start_s n/a',
    'raw: /tmp/x/results.jsonl'
  ].join('\n')

  it('reads each median by its metric name, negative ones too, and leaves out metrics with no value', () => {
    expect(parseMedians(out).figures).toEqual({ srun_lat_p50_ms: 191.749, array_tasks_per_s: 12.497, wide_overhead_ms: -1.5 })
  })

  it('takes the system and its version from the first == line', () => {
    expect(parseMedians(out).title).toBe('Slurm 22.05.8: slurmctld + 3 slurmd (CPUs=4 each) on one machine')
    expect(parseMedians('nothing here').title).toBe('')
  })

  it('keys a run by its peer and its knobs in any order, so one run\'s figures are shared, not another\'s', () => {
    expect(knobKey('dask', { SPAWN_N: 10000, REPEATS: 1 })).toBe(knobKey('dask', { REPEATS: 1, SPAWN_N: 10000 }))
    expect(knobKey('dask', { SPAWN_N: 10000 })).not.toBe(knobKey('dask', { SPAWN_N: 2000 }))
  })

  it('writes the load average as 1 / 5 / 15 minutes', () => {
    expect(formatLoad([1.234, 0.5, 12])).toBe('1.23 / 0.50 / 12.00')
  })
})
