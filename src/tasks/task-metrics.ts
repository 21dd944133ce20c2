/** The tasks module's metrics, registered on the injected registry (several nodes may share a test process). */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { FINAL_STATUSES } from '../../proto/index.ts'

export interface TaskMetrics {
  submitted: Counter<'type'>
  completed: Counter<'status' | 'type'>
  started: Counter
  retried: Counter
  failedOver: Counter
  handedOver: Counter
  duration: Histogram
  dispatch: Histogram
  routing: Counter<'strategy' | 'outcome'>
  rehomed: Counter<'reason'>
}

export function taskMetrics (r: Registry, live: { running: () => number, queued: () => number, coordinating: () => number }): TaskMetrics {
  const m: TaskMetrics = {
    submitted: new Counter({ name: 'grid_tasks_submitted_total', help: 'Tasks submitted on this node', labelNames: ['type'], registers: [r] }),
    completed: new Counter({ name: 'grid_tasks_completed_total', help: 'Tasks that reached a final status here (on their executor, or by their coordinator\'s verdict), by status and task type ("command" for a plain command)', labelNames: ['status', 'type'], registers: [r] }),
    started: new Counter({ name: 'grid_tasks_started_total', help: 'Task attempts started on this node', registers: [r] }),
    retried: new Counter({ name: 'grid_tasks_retried_total', help: 'Task attempts this node retried (executor died, or failure with retry-on-failure)', registers: [r] }),
    failedOver: new Counter({ name: 'grid_tasks_failed_over_total', help: 'Tasks whose coordination this node took over from a dead coordinator', registers: [r] }),
    handedOver: new Counter({ name: 'grid_tasks_handed_over_total', help: 'Tasks this node stopped driving because another node took their coordination over (this one was cut off or stopped)', registers: [r] }),
    duration: new Histogram({ name: 'grid_task_duration_seconds', help: 'Run time of task attempts on this node', buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600], registers: [r] }),
    dispatch: new Histogram({ name: 'grid_task_dispatch_seconds', help: 'From submission on this node to an executor admitting the task', buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5], registers: [r] }),
    routing: new Counter({ name: 'grid_routing_decisions_total', help: 'Placement decisions by strategy and outcome', labelNames: ['strategy', 'outcome'], registers: [r] }),
    rehomed: new Counter({ name: 'grid_sessions_rehomed_total', help: 'Sessions this node moved to a new owner when placing one of their tasks, by reason (no-owner, dead, draining, unfit, full, unreachable)', labelNames: ['reason'], registers: [r] })
  }
  for (const status of FINAL_STATUSES) m.completed.inc({ status, type: 'command' }, 0)
  m.submitted.inc({ type: 'command' }, 0)
  for (const reason of ['no-owner', 'dead', 'draining', 'unfit', 'full', 'unreachable']) m.rehomed.inc({ reason }, 0)
  new Gauge({ name: 'grid_active_tasks', help: 'Tasks running on this node', registers: [r], collect () { this.set(live.running()) } })
  new Gauge({ name: 'grid_tasks_queued', help: 'Tasks waiting in this node\'s queue for resources', registers: [r], collect () { this.set(live.queued()) } })
  new Gauge({ name: 'grid_tasks_coordinating', help: 'Unfinished tasks this node coordinates', registers: [r], collect () { this.set(live.coordinating()) } })
  return m
}
