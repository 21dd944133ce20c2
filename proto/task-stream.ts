/**
 * The task stream: the one vocabulary of events a client sees for a task, from `POST /v1/tasks` (NDJSON, one event
 * a line), from `GET /v1/tasks/ID/logs`, and inside the daemon between the coordinator and the control API. gridctl
 * reads these types; the README's API table documents them. Jobs and workflows stream in the same shape.
 *
 * Inside the daemon output data is bytes; on the wire it is text (utf8, or base64 when the request asks for it).
 * Only types live here (no schema code), so gridctl loads nothing to read a stream.
 */
import type { TaskStatus } from './tasks.ts'

/** Where output came from. */
export type OutputStream = 'stdout' | 'stderr'

/** Why a session's tasks left its owner for another node. */
export type RehomeReason = 'no-owner' | 'dead' | 'draining' | 'unfit' | 'full' | 'unreachable'

export type TaskStreamEvent<Data = string> =
  /** the origin recorded the task; `id` names it from now on */
  | { type: 'accepted', id: string }
  /** an executor took this attempt: running now, or queued there behind other tasks (`reason` says what it waits for) */
  | { type: 'placed', id: string, node: string, nodeName: string, attempt: number, queued: boolean, reason?: string, passed?: Array<{ name: string, reason: string }> }
  /** `--sync`: bytes of the task's tree sent so far to the node about to run it, of those it lacked (at most 4 a second) */
  | { type: 'sync', id: string, node: string, nodeName: string, sentBytes: number, totalBytes: number }
  /** the attempt's process started */
  | { type: 'started', id: string, node: string, attempt: number, pid: number, gpus: string[] }
  /** output bytes at `offset` in the task's log */
  | { type: 'output', stream: OutputStream, offset: number, data: Data }
  /** bytes this client did not get (it fell behind, or the executor's log dropped them) */
  | { type: 'gap', bytes: number }
  /** the attempt was lost (its node died, or it failed with retry-on-failure): another attempt follows */
  | { type: 'retry', id: string, attempt: number, reason: string, delayMs: number }
  /** no node can take the task now: it stays pending and is routed again after `delayMs` */
  | { type: 'waiting', id: string, reason: string, delayMs: number }
  /** the task's session moved to a new owner node, and why (`reason` is a code, `message` says it for people) */
  | { type: 'rehomed', id: string, session: string, from: string | null, fromName: string | null, to: string, toName: string, reason: RehomeReason, message: string }
  /** the end: the task's final status; `code` is the exit code gridctl exits with */
  | {
    type: 'exit'
    id: string
    status: TaskStatus
    exitCode: number | null
    code: number
    signal: string | null
    error: string | null
    node: string | null
    nodeName: string | null
    attempts: number
    /** a typed task's (or warm worker's) JSON result */
    result?: unknown
    /**
     * `--fetch`: the files the task wrote that matched, as a manifest blob in the origin's sync cache (read with
     * POST /v1/sync/blobs/read); null when none matched; `error` when they could not be brought back
     */
    fetched?: { manifest: string | null, files: number, bytes: number, error?: string }
  }

export type TaskStreamType = TaskStreamEvent['type']

/** Output bytes as the stream carries them: text, or base64 when asked. */
export type StreamEncoding = 'utf8' | 'base64'

/** Turns a daemon-side event (bytes) into its wire form (text). */
export function encodeStreamEvent (ev: TaskStreamEvent<Uint8Array>, enc: StreamEncoding): TaskStreamEvent {
  if (ev.type !== 'output') return ev
  return { type: 'output', stream: ev.stream, offset: ev.offset, data: Buffer.from(ev.data.buffer, ev.data.byteOffset, ev.data.byteLength).toString(enc) }
}
