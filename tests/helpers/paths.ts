import { fileURLToPath } from 'node:url'
import { join } from 'node:path'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
/** The daemon the harness runs: the tsc build, or another (GRID_TEST_GRIDD; the benchmarks use it for the bundle). */
export const GRIDD = process.env.GRID_TEST_GRIDD ?? join(ROOT, 'dist/daemon/gridd.js')
export const GRIDCTL = join(ROOT, 'dist/src/cli/gridctl.js')
export const LIFELINE = join(ROOT, 'tests/helpers/lifeline.mjs')
export const FAKE_NVIDIA_SMI = join(ROOT, 'tests/helpers/fake-nvidia-smi')
