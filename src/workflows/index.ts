/**
 * workflows: DAGs of jobs (gridctl workflow run), driven from the node they were submitted to and taken over by a
 * successor when it dies.
 *
 * Owns the workflow file's checks and parameter substitution, the DAG's scheduling, the workflow's replicated state
 * (the `workflows` collection), pause, resume, cancel and retry from any node, and takeover. A plain job runs as a
 * task (the tasks service), a job with items or count as a job (the jobs service); it must not place runs nor run
 * processes.
 */
export { WorkflowService, type WorkflowsComponents, type WorkflowsInit } from './service.ts'
export { checkWorkflow, findCycle, substitute, type WorkflowDef } from './file.ts'
export { plan } from './dag.ts'
export { WorkflowRecords, mergeWorkflow, toWorkflowRecord } from './records.ts'
