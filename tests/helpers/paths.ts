import { fileURLToPath } from 'node:url'
import { join } from 'node:path'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const GRIDD = join(ROOT, 'dist/daemon/gridd.js')
export const GRIDCTL = join(ROOT, 'dist/src/cli/gridctl.js')
export const LIFELINE = join(ROOT, 'tests/helpers/lifeline.mjs')
export const FAKE_NVIDIA_SMI = join(ROOT, 'tests/helpers/fake-nvidia-smi')
