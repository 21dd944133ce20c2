/**
 * How a workflow's job states merge: the driver writes a job's changes as the job's own entry (not the whole
 * document), and what every node shows is, per job, the newer of the document and that entry. A pause mark, which
 * rewrites the writer's document entry with a fresh stamp, must not bring back the states it held; a document written
 * later (a retry's, a successor's) wins over the job entries before it. A real state store, no network.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import type { WorkflowDoc } from '../../proto/index.ts'
import type { NodeId } from '../../src/interface/index.ts'
import { StateStore } from '../../src/state/index.ts'
import { WorkflowRecords } from '../../src/workflows/records.ts'
import { StubNet } from '../helpers/state-net.ts'
import { stubSigner } from '../helpers/state-signer.ts'

const SELF = 'node-a' as NodeId
const dirs: string[] = []
const stores: StateStore[] = []

afterEach(async () => {
  for (const s of stores.splice(0)) await s.stop()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function records (): WorkflowRecords {
  const dataDir = mkdtempSync(join(tmpdir(), 'grid-wf-records-'))
  dirs.push(dataDir)
  const store = new StateStore({ mesh: new StubNet().mesh(SELF), logger: pino({ level: 'silent' }), registry: new Registry(), signer: stubSigner() }, { cluster: 'grid', dataDir })
  store.load()
  stores.push(store)
  return new WorkflowRecords(store)
}

const doc: WorkflowDoc = {
  name: 'w',
  order: ['a', 'b'],
  defs: { a: { needs: [], distribute: false, body: { command: ['true'] } }, b: { needs: ['a'], distribute: false, body: { command: ['true'] } } },
  jobs: { a: { status: 'pending', run: 0 }, b: { status: 'pending', run: 0 } },
  origin: SELF,
  originName: 'a',
  driver: SELF,
  driverName: 'a',
  createdAt: Date.now()
}

describe('workflows - job states', () => {
  it('shows each job\'s newer state, keeps it through a pause mark, and lets a later document win', () => {
    const r = records()
    r.writeDoc('w1', doc)
    r.writeJob('w1', 'a', { status: 'succeeded', run: 1, exitCode: 0 })
    r.writeJob('w1', 'b', { status: 'running', run: 1 })
    expect(r.doc('w1')?.doc.jobs).toEqual({ a: { status: 'succeeded', run: 1, exitCode: 0 }, b: { status: 'running', run: 1 } })
    expect(r.docs().map(([id, m]) => [id, m.doc.jobs.a?.status])).toEqual([['w1', 'succeeded']])

    // the pause mark rewrites the document entry: the job states stay the newer ones
    r.writePause('w1', true)
    const paused = r.doc('w1')
    expect(paused?.paused).toBe(true)
    expect(paused?.doc.jobs).toEqual({ a: { status: 'succeeded', run: 1, exitCode: 0 }, b: { status: 'running', run: 1 } })

    // a document written after (a retry resetting b) wins over b's older entry
    r.writeDoc('w1', { ...doc, jobs: { a: { status: 'succeeded', run: 1, exitCode: 0 }, b: { status: 'pending', run: 1 } }, retries: 1, retriedAt: Date.now() })
    expect(r.doc('w1')?.doc.jobs.b).toEqual({ status: 'pending', run: 1 })
    // and a change after it wins again
    r.writeJob('w1', 'b', { status: 'running', run: 2, round: 1 })
    expect(r.doc('w1')?.doc.jobs.b).toEqual({ status: 'running', run: 2, round: 1 })
  })
})
