/**
 * The outbox's group commit: requests answered once their record is logged (POST /v1/tasks, PUT /v1/sessions/ID) each
 * wait for a flush; callers of a moment share one (one signed record, one log append), and none is answered before
 * its own write is in the log.
 */
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Outbox } from '../../src/state/outbox.ts'
import type { DocRecord } from '../../src/state/persistence.ts'
import type { SignedRecord } from '../../src/state/signing.ts'
import { LogLimiter } from '../../src/util/index.ts'

function outbox (appendMs = 0): { box: Outbox, appends: DocRecord[][], signed: SignedRecord[] } {
  const appends: DocRecord[][] = []
  const signed: SignedRecord[] = []
  const box = new Outbox({
    selfId: 'self',
    writers: { own: { gen: 1 }, ownLog: { next: 0 }, appendOwn: (rec: SignedRecord) => { signed.push(rec) } } as never,
    signer: { sign: () => new Uint8Array(64) },
    files: {
      append: async (recs: DocRecord[]) => {
        await new Promise(resolve => setTimeout(resolve, appendMs))
        appends.push(recs)
      }
    },
    publish: async () => {},
    metrics: { applied: { inc: () => {} } } as never,
    log: pino({ level: 'silent' }),
    limiter: new LogLimiter(60_000)
  }, { flushIntervalMs: 60_000 })
  return { box, appends, signed }
}

/** A Yjs update of one entry, as a local write makes. */
function write (n: number): Uint8Array {
  const d = new Y.Doc()
  d.getMap('sessions').set(`s${n}`, { value: n })
  return Y.encodeStateAsUpdate(d)
}

describe('state outbox - flushes shared by their callers', () => {
  it('logs the writes of many concurrent callers in one record and one append', async () => {
    const { box, appends, signed } = outbox()
    const waits: Array<Promise<void>> = []
    for (let i = 0; i < 20; i++) {
      box.local(write(i), 1)
      waits.push(box.flush())
    }
    await Promise.all(waits)
    expect(appends).toHaveLength(1)
    expect(signed).toHaveLength(1)
    box.stop()
  })

  it('answers a caller that came during a flush only once a later flush has logged its write', async () => {
    const { box, appends } = outbox(30)
    box.local(write(1), 1)
    const first = box.flush()
    // let the first flush begin (it seals write 1), then write again while its append is under way
    await new Promise(resolve => setImmediate(resolve))
    box.local(write(2), 1)
    let secondDone = false
    const second = box.flush().then(() => { secondDone = true })
    const third = box.flush()
    await first
    expect(appends).toHaveLength(1)
    expect(secondDone).toBe(false)
    await Promise.all([second, third])
    // the second and third callers shared one flush, which logged write 2
    expect(appends).toHaveLength(2)
    expect(appends[1]).toHaveLength(1)
    box.stop()
  })
})
