/**
 * The control API (HTTP/1.1 + JSON on the Unix socket, versioned under /v1): response shapes shared by the daemon
 * and gridctl. Errors are `{"error": {"code", "message", "hint"?}}` with the HTTP status of the code
 * (src/interface/errors.ts). Streams are NDJSON, one JSON object per line.
 *
 * The answers' types are the schemas' (proto/api-schemas.ts, where each field is described): `import type` only, so
 * gridctl reads them without loading typebox.
 */
import type { Static } from 'typebox'
import type { WireError } from '../src/interface/index.ts'
import type * as S from './api-schemas.ts'

export const API_PREFIX = '/v1'

export interface ApiErrorBody { error: WireError }

export type StatusResponse = Static<typeof S.StatusResponseSchema>
export type LimitsStatus = Static<typeof S.LimitsStatusSchema>
export type NodeEntry = Static<typeof S.NodeEntrySchema>
export type HealthEntry = Static<typeof S.HealthEntrySchema>
export type SessionEntry = Static<typeof S.SessionEntrySchema>
/** GET /v1/stats: the cluster's figures, summed over alive nodes (as this node sees them). */
export type StatsResponse = Static<typeof S.StatsResponseSchema>
