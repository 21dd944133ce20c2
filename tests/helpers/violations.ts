/** The violations an error that lists them (InvalidConfigError, InventoryError) carries, for tests of validation. */
export function violationsOf<E extends Error & { violations: string[] }> (kind: abstract new (...args: never[]) => E, fn: () => unknown): string[] {
  try {
    fn()
  } catch (err) {
    if (err instanceof kind) return err.violations
    throw err
  }
  throw new Error(`expected a ${kind.name}`)
}
