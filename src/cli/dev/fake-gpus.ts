/**
 * The fake nvidia-smi `gridctl dev up --gpus-fake K` gives each node: a small shell script in the node's folder that
 * answers gridd's `--query-gpu` CSV query (src/executor/gpus.ts) with K GPUs that do not exist, so that GPU placement
 * (`gridctl run --gpus N`, CUDA_VISIBLE_DEVICES) can be tried on a machine without any. gridd runs it through its
 * `--nvidia-smi` flag. Written from here rather than copied from a file, so the bundled gridctl has it too.
 */

export const FAKE_GPU_NAME = 'Fake GPU (gridctl dev)'
/** What each fake GPU reports as its memory, in MiB (an 80 GB card). */
export const FAKE_GPU_MEMORY_MIB = 81_559

/** The UUID of fake GPU `index` of `node`: unique across the dev cluster, and plainly fake. */
export function fakeGpuUuid (node: string, index: number): string {
  return `GPU-fake-${node}-${index}`
}

export function fakeNvidiaSmiScript (node: string, count: number): string {
  const lines = Array.from({ length: count }, (_, i) => `${i}, ${fakeGpuUuid(node, i)}, ${FAKE_GPU_NAME}, ${FAKE_GPU_MEMORY_MIB}, 0, 0`)
  return [
    '#!/bin/sh',
    `# A fake nvidia-smi, written by gridctl dev up --gpus-fake ${count} for the dev node ${node}: whatever it is asked,`,
    '# it prints the CSV lines of gridd\'s query (index, uuid, name, memory.total, memory.used, utilization.gpu) for',
    `# ${count} GPU${count === 1 ? '' : 's'} that do not exist. Tasks placed on them get these UUIDs in CUDA_VISIBLE_DEVICES.`,
    'cat <<\'EOF\'',
    ...lines,
    'EOF',
    ''
  ].join('\n')
}
