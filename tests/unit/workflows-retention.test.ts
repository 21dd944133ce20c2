/**
 * Workflow records are bounded by the task retention like task records: once a workflow has ended longer than the
 * retention ago, its driver's entries (the document, each job's state, each job's kept stdout) leave the replicated
 * store, while an unfinished workflow's stay however long it runs. A real state store (no network) and the real
 * workflows service, with a tasks service stub whose tasks print and exit at once (or never, for the running one).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import type { TaskSpec } from '../../proto/index.ts'
import type { NodeId } from '../../src/interface/index.ts'
import { StateStore } from '../../src/state/index.ts'
import { EventQueue, type ClientEvent } from '../../src/tasks/index.ts'
import { WorkflowService, type WorkflowsComponents } from '../../src/workflows/service.ts'
import { waitFor } from '../helpers/cluster.ts'
import { StubNet } from '../helpers/state-net.ts'
import { stubSigner } from '../helpers/state-signer.ts'

const SELF = 'node-a' as NodeId
const RETENTION_MS = 300
const dirs: string[] = []
const stops: Array<() => Promise<void>> = []

afterEach(async () => {
  for (const s of stops.splice(0)) await s()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** A task that prints its command's last word and exits 0 at once; `sleep` never ends. */
function submitSpec (spec: TaskSpec, id: string): { id: string, events: EventQueue<ClientEvent> } {
  const q = new EventQueue<ClientEvent>()
  const argv = (spec as { command?: string[] }).command ?? []
  if (argv[0] !== 'sleep') {
    q.push({ type: 'output', stream: 'stdout', data: Buffer.from(`${argv[argv.length - 1] ?? ''}\n`) } as unknown as ClientEvent)
    q.push({ type: 'exit', id, status: 'completed', exitCode: 0, code: 0, signal: null, error: null, node: SELF, nodeName: 'a', attempts: 1 } as unknown as ClientEvent)
    q.close()
  }
  return { id, events: q }
}

function setup (): { store: StateStore, service: WorkflowService } {
  const dataDir = mkdtempSync(join(tmpdir(), 'grid-wf-retention-'))
  dirs.push(dataDir)
  const store = new StateStore({ mesh: new StubNet().mesh(SELF), logger: pino({ level: 'silent' }), registry: new Registry(), signer: stubSigner() }, { cluster: 'grid', dataDir })
  store.load()
  stops.push(async () => { await store.stop() })
  const c = {
    peerId: SELF,
    tasks: { submitSpec, eligible: () => ({ ok: true }), cancel: async () => {}, get: () => undefined, logs: () => { throw new Error('no logs here') } },
    jobs: { submit: () => { throw new Error('no jobs here') }, summary: () => undefined, cancel: () => {} },
    members: { view: () => [], state: () => 'alive', on: () => {}, off: () => {} },
    store,
    resolveNode: () => undefined,
    logger: pino({ level: 'silent' })
  } as unknown as WorkflowsComponents
  const service = new WorkflowService(c, { nodeName: 'a', retentionMs: RETENTION_MS })
  stops.push(async () => { await service.stop() })
  return { store, service }
}

/** This node's keys of a workflow in the `workflows` collection. */
const keysOf = (store: StateStore, id: string): string[] => [...store.groupAll('workflows').keys()].filter(k => k === id || k.startsWith(`${id}/`))

describe('workflows - retention', () => {
  it('collects an ended workflow\'s document, job states and kept stdout after the task retention; a running one stays', async () => {
    const { store, service } = setup()
    const done = service.submit({ name: 'ends', detach: true, jobs: { a: { command: ['echo', 'hi'] }, b: { needs: ['a'], command: ['echo', 'there'] } } }).id
    const running = service.submit({ name: 'runs', detach: true, jobs: { s: { command: ['sleep', '1000'] } } }).id
    await waitFor('the first workflow to succeed', () => service.get(done).status === 'succeeded', { timeoutMs: 10_000, intervalMs: 20 })
    expect(service.stdout(done, 'b')).toBe('there')
    // its records: the document, and each job's state and kept stdout
    expect(keysOf(store, done).sort()).toEqual([done, `${done}/job/a`, `${done}/job/b`, `${done}/out/a`, `${done}/out/b`].sort())
    await waitFor('the ended workflow\'s records to be collected', async () => {
      await store.maintain()
      return keysOf(store, done).length === 0
    }, { timeoutMs: 20_000, intervalMs: 50 })
    expect(() => service.get(done)).toThrow(/no workflow/)
    expect(service.list().map(w => w.id)).toEqual([running])
    expect(service.get(running).status).toBe('running')
    expect(keysOf(store, running)).toContain(`${running}/job/s`)
  })
})
