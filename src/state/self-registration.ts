/**
 * Keeps this node's registry entry true: writes it at start, again whenever the facts change (addresses, GPUs,
 * drain flag) or when the node finds it was forgotten while it runs, and marks it left on a graceful stop.
 */
import type { Logger } from 'pino'
import type { RegistryValue } from '../../proto/index.ts'
import type { Startable } from '../interface/index.ts'
import { repeat } from '../util/index.ts'
import type { ForgottenNodes, NodeRegistry } from './collections.ts'
import type { StateStore } from './store.ts'

export type Facts = Omit<RegistryValue, 'joinedAt' | 'updatedAt'>

export class SelfRegistration implements Startable {
  private loop?: { stop: () => void }
  private last = ''

  constructor (
    private readonly components: { store: StateStore, registry: NodeRegistry, forgotten: ForgottenNodes, logger: Logger },
    private readonly facts: () => Facts,
    private readonly checkIntervalMs = 2_000
  ) {}

  start (): void {
    this.publishIfChanged(true)
    this.components.store.on('change', this.onChange)
    this.loop = repeat(() => { this.publishIfChanged(false) }, this.checkIntervalMs, err => {
      this.components.logger.warn({ err }, 'registry refresh failed')
    })
  }

  /** On a graceful stop the entry says the node left, so a later reader does not take it for dead. */
  async stop (): Promise<void> {
    this.loop?.stop()
    this.components.store.off('change', this.onChange)
    this.write({ ...this.facts(), leftAt: Date.now() })
    await this.components.store.flush()
  }

  /** Writes the entry now (the drain flag changed, say). */
  refresh (): void {
    this.publishIfChanged(true)
  }

  private readonly onChange = (e: { collection: string, key: string }): void => {
    if (e.collection === 'forgotten' && e.key === this.components.store.selfId && this.components.forgotten.isForgotten(e.key)) {
      this.components.logger.warn('this node was forgotten while running; registering again')
      this.publishIfChanged(true)
    }
  }

  private publishIfChanged (force: boolean): void {
    const facts = this.facts()
    const text = JSON.stringify(facts)
    if (!force && text === this.last) return
    this.last = text
    this.write(facts)
  }

  private write (facts: Facts & { leftAt?: number }): void {
    const prev = this.components.registry.get(this.components.store.selfId)
    const now = Date.now()
    this.components.registry.publish({ ...facts, joinedAt: prev?.value.joinedAt ?? now, updatedAt: now })
  }
}
