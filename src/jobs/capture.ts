/** What a job keeps of a run's output: its stdout's first JOB_RESULT_STDOUT_MAX_BYTES, as text. */
import { JOB_RESULT_STDOUT_MAX_BYTES } from '../../proto/index.ts'

/** Text cut to JOB_RESULT_STDOUT_MAX_BYTES. */
export function capped (text: string): string {
  if (text.length * 3 <= JOB_RESULT_STDOUT_MAX_BYTES) return text
  return Buffer.from(text).subarray(0, JOB_RESULT_STDOUT_MAX_BYTES).toString('utf8')
}

/** The first JOB_RESULT_STDOUT_MAX_BYTES of a stream, as text. */
export class Capture {
  private readonly parts: Uint8Array[] = []
  private bytes = 0

  add (d: Uint8Array): void {
    if (this.bytes >= JOB_RESULT_STDOUT_MAX_BYTES) return
    const take = d.byteLength <= JOB_RESULT_STDOUT_MAX_BYTES - this.bytes ? d : d.subarray(0, JOB_RESULT_STDOUT_MAX_BYTES - this.bytes)
    this.parts.push(take)
    this.bytes += take.byteLength
  }

  text (): string {
    return Buffer.concat(this.parts).toString('utf8')
  }
}
