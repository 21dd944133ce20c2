/**
 * executor: this machine's resources and the processes that run on it.
 *
 * Owns CPU slots, memory, GPUs (read with nvidia-smi), the admission queue, spawning in process groups, timeouts,
 * cancellation and bounded output capture. It must not know about peers or routing: tasks hands it admitted work.
 */
export { LocalResources, type ResourcesInit, type Usage } from './resources.ts'
export { queryGpus, parseGpuCsv, NVIDIA_SMI_QUERY } from './gpus.ts'
export { Executor, exitCodeOf, type ExecTask, type ExecutorInit, type ExecutorComponents, type Watcher, type TaskTypeConfig } from './executor.ts'
export { WorkerPool, type WorkerTypeConfig, type WorkerInfo, type WorkerRequest, type WorkerPoolInit } from './workers.ts'
