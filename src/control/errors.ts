import { GridError } from '../interface/index.ts'

/** A request for an endpoint that exists, with a method it does not take: answered 405 with an Allow header. */
export class MethodNotAllowedError extends GridError {
  /** The methods the endpoint takes, for the Allow header. */
  readonly allow: readonly string[]

  constructor (message: string, allow: readonly string[]) {
    super('METHOD_NOT_ALLOWED', message)
    this.allow = allow
  }
}
