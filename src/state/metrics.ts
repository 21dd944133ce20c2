/**
 * The state store's metrics, registered on the injected registry (never a global one, so several nodes can share a
 * process). Counters are incremented by the parts that do the work; gauges read the store when scraped. This file
 * only declares them: it must not decide anything about the state.
 */
import { Counter, Gauge, type Registry } from 'prom-client'
import { COLLECTIONS, type CollectionName } from '../../proto/index.ts'

export interface StateMetrics {
  applied: Counter<'source'>
  rejected: Counter<'reason'>
  syncs: Counter<'outcome'>
  syncBytes: Counter
  regenerations: Counter
  flushes: Counter
  pushes: Counter<'outcome'>
}

/** What the gauges read at scrape time. */
export interface StateGaugeSources {
  documentBytes: () => number
  writers: () => number
  entries: (collection: CollectionName) => number
  walBytes: () => number
}

export function createStateMetrics (r: Registry, read: StateGaugeSources): StateMetrics {
  const m: StateMetrics = {
    applied: new Counter({ name: 'grid_state_updates_applied_total', help: 'CRDT updates applied, by source (local, push, sync, load)', labelNames: ['source'], registers: [r] }),
    rejected: new Counter({ name: 'grid_state_updates_rejected_total', help: 'CRDT updates from peers dropped as invalid, by reason', labelNames: ['reason'], registers: [r] }),
    syncs: new Counter({ name: 'grid_state_syncs_total', help: 'Catch-up exchanges this node started, by outcome', labelNames: ['outcome'], registers: [r] }),
    syncBytes: new Counter({ name: 'grid_state_sync_received_bytes_total', help: 'Bytes of updates received through catch-up', registers: [r] }),
    regenerations: new Counter({ name: 'grid_state_regenerations_total', help: 'New generations of this node\'s document (tombstones dropped)', registers: [r] }),
    flushes: new Counter({ name: 'grid_state_batches_sent_total', help: 'Batches of local updates pushed to peers', registers: [r] }),
    pushes: new Counter({ name: 'grid_state_pushes_total', help: 'Batches pushed to a peer, by outcome (sent; skipped: no open stream or a full one; nudged: a peer that missed one was told to catch up)', labelNames: ['outcome'], registers: [r] })
  }
  new Gauge({ name: 'grid_state_document_bytes', help: 'Bytes of the signed updates this node holds for every writer document\'s current generation (falls at each new generation)', registers: [r], collect () { this.set(read.documentBytes()) } })
  new Gauge({ name: 'grid_state_writers', help: 'Writer documents held (one per node that ever wrote)', registers: [r], collect () { this.set(read.writers()) } })
  new Gauge({
    name: 'grid_state_entries',
    help: 'Live entries per collection, as this node reads them',
    labelNames: ['collection'],
    registers: [r],
    collect () { for (const c of COLLECTIONS) this.set({ collection: c }, read.entries(c)) }
  })
  new Gauge({ name: 'grid_state_wal_bytes', help: 'Size of the state write-ahead log', registers: [r], collect () { this.set(read.walBytes()) } })
  return m
}
