/**
 * Finished tasks kept for `logs` and `get`, within a budget for their logs all together and RETAINED_TASKS_MAX
 * tasks: the oldest are forgotten first.
 */
import { RETAINED_TASKS_MAX } from './constants.ts'
import type { OutputLog } from './output-log.ts'

export class RetainedJobs<T extends { log: OutputLog }> {
  private readonly jobs: T[] = []
  private bytes = 0

  /** `forget` is told of each job that no longer fits. */
  constructor (private readonly maxBytes: number, private readonly forget: (job: T) => void) {}

  add (job: T): void {
    this.jobs.push(job)
    this.bytes += job.log.size
    while (this.bytes > this.maxBytes || this.jobs.length > RETAINED_TASKS_MAX) {
      const old = this.jobs.shift()
      if (old === undefined) break
      this.bytes -= old.log.size
      this.forget(old)
    }
  }
}
