/**
 * Workflows' names and limits, without their schemas: what gridctl needs before it sends a workflow. Kept apart from
 * proto/workflows.ts so that the CLI does not load typebox (tests/cluster/gridctl.test.ts counts its modules).
 */
export const WORKFLOW_STATUSES = ['running', 'paused', 'succeeded', 'failed', 'cancelled'] as const
export type WorkflowStatus = typeof WORKFLOW_STATUSES[number]
export const WORKFLOW_JOB_STATUSES = ['pending', 'running', 'succeeded', 'failed', 'skipped', 'cancelled'] as const
export type WorkflowJobStatus = typeof WORKFLOW_JOB_STATUSES[number]

/** Most jobs one workflow may have. */
export const WORKFLOW_JOBS_MAX = 2_000
/** Largest POST /v1/workflows body. */
export const WORKFLOW_REQUEST_MAX_BYTES = 1024 * 1024
/** A job's name: what `needs`, GRID_NEEDS and `workflow logs ID JOB` call it. */
export const WORKFLOW_JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/
