import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { BlobCache } from './blob-cache.ts'

export interface SyncMetrics {
  sent: Counter<'kind'>
  saved: Counter
  seconds: Histogram<'phase'>
  refused: Counter
}

/** The sync module's metrics, on the injected registry. */
export function syncMetrics (r: Registry, cache: Pick<BlobCache, 'bytes' | 'count'>): SyncMetrics {
  new Gauge({ name: 'grid_sync_cache_bytes', help: 'Bytes of blobs in this node\'s sync cache', registers: [r], collect () { this.set(cache.bytes) } })
  new Gauge({ name: 'grid_sync_cache_blobs', help: 'Blobs in this node\'s sync cache', registers: [r], collect () { this.set(cache.count) } })
  return {
    sent: new Counter({ name: 'grid_sync_bytes_sent_total', help: 'Bytes of synced blobs this node sent to peers: file (a tree\'s files), manifest, fetch (files a task wrote, for --fetch)', labelNames: ['kind'], registers: [r] }),
    saved: new Counter({ name: 'grid_sync_bytes_saved_total', help: 'Bytes of synced files not sent because the receiving node\'s cache had them', registers: [r] }),
    seconds: new Histogram({ name: 'grid_sync_seconds', help: 'Time to ready a synced tree: transfer (on the sending node) and layout (on the executor); fetch (bringing --fetch files back)', labelNames: ['phase'], buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120], registers: [r] }),
    refused: new Counter({ name: 'grid_sync_blobs_refused_total', help: 'Blobs that arrived here with content not matching their hash (refused, sent again)', registers: [r] })
  }
}
