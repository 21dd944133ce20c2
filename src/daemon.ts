/**
 * The composition root: the only place that builds concrete implementations and hands each module the narrow
 * components it declares. Starts them in order, rolls back a failed start, stops them in reverse.
 */
import { mkdirSync, chmodSync } from 'node:fs'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import type { GridConfig } from './config/index.ts'
import { ControlServer, StatsSampler, routes, type ControlDeps } from './control/index.ts'
import { availableParallelism, totalmem } from 'node:os'
import { join } from 'node:path'
import { Executor, LocalResources, WorkerPool, resolveTaskUser, scratchPath, type WorkerTypeConfig } from './executor/index.ts'
import { GridError, type Startable } from './interface/index.ts'
import { NodeHealthMonitor } from './health/index.ts'
import { Membership } from './membership/index.ts'
import { Mesh, loadOrCreateIdentity, loadSwarmKey, type SwarmKey } from './mesh/index.ts'
import { MetricsServer, createRegistry } from './metrics/index.ts'
import { Ed25519RecordSigner, ForgottenNodes, NodeRegistry, SelfRegistration, Sessions, StateStore } from './state/index.ts'
import { QueueControl, Stealer, TaskService, WorkerService, drainMarkPath, nodeName as nodeNameOf, resolveNode } from './tasks/index.ts'
import { JobService } from './jobs/index.ts'
import { SyncService } from './sync/index.ts'
import { WorkflowService } from './workflows/index.ts'
import { lockDataDir } from './util/index.ts'
import { GRIDD_NODE_FLAGS, VERSION } from './version.ts'

export interface DaemonOptions {
  logger: Logger
  /** Defaults to a fresh registry with process metrics. */
  registry?: Registry
}

interface Part { name: string, part: Startable }

export class Daemon {
  readonly startedAt = Date.now()
  readonly version = VERSION
  private started: Part[] = []
  private stopping?: Promise<void>

  private constructor (
    readonly config: GridConfig,
    readonly logger: Logger,
    readonly registry: Registry,
    readonly mesh: Mesh,
    readonly membership: Membership,
    readonly resources: LocalResources,
    readonly state: StateStore,
    readonly control: ControlServer,
    readonly metrics: MetricsServer,
    readonly swarmKey: SwarmKey | null,
    private readonly parts: Part[],
    private readonly unlock: () => void
  ) {}

  /** Builds every part (nothing listens yet). Identity and swarm key are read or created here. */
  static async create (config: GridConfig, opts: DaemonOptions): Promise<Daemon> {
    const logger = opts.logger
    const registry = opts.registry ?? createRegistry({ node: config.name }, VERSION)
    // a task user that is unknown, or that gridd cannot switch to, fails the start here, not the first task
    const taskUser = config.executor.taskUser === '' ? undefined : resolveTaskUser(config.executor.taskUser)
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 })
    chmodSync(config.dataDir, 0o700)
    const lock = lockDataDir(config.dataDir)
    try {
      const identity = await loadOrCreateIdentity(config.dataDir)
      const swarmKey = config.swarmKey === null ? null : loadSwarmKey(config.swarmKey, config.swarmKeyGenerate)
      if (swarmKey === null) {
        logger.warn('running WITHOUT a swarm key (insecure lab mode): any libp2p node that can reach this one can connect')
      } else if (swarmKey.generated) {
        logger.info({ path: swarmKey.path, fingerprint: swarmKey.fingerprint }, 'generated a swarm key for a new cluster; copy this file to every node that should join it')
      } else if (swarmKey.loosePermissions) {
        logger.warn({ path: swarmKey.path }, 'the swarm key file can be read by group or others; chmod 600 it')
      }
      if (identity.created) logger.info({ path: identity.path }, 'created a new node identity')
      if (taskUser !== undefined) logger.info({ user: taskUser.name, uid: taskUser.uid, gid: taskUser.gid }, 'tasks and warm workers run as the task user')

      const resources = new LocalResources({ logger: logger.child({ component: 'resources' }), registry }, { nvidiaSmi: config.nvidiaSmi })
      const mesh = await Mesh.create({ logger: logger.child({ component: 'mesh' }), registry }, {
        cluster: config.cluster,
        listen: config.listen,
        announce: config.announce,
        bootstrap: config.bootstrap,
        maxConnections: config.mesh.maxConnections,
        dialConcurrency: config.mesh.dialConcurrency,
        rendezvousIntervalMs: config.mesh.rendezvousIntervalMs,
        privateKey: identity.key,
        swarmKey,
        version: VERSION
      })
      const state = new StateStore({ mesh, logger: logger.child({ component: 'state' }), registry, signer: new Ed25519RecordSigner(identity.key) }, {
        cluster: config.cluster,
        dataDir: config.dataDir
      })
      state.load()
      const nodeRegistry = new NodeRegistry(state, { logger: logger.child({ component: 'state' }), registry })
      const sessions = new Sessions(state, config.sessions)
      const forgotten = new ForgottenNodes(state)
      const membership = new Membership({
        mesh,
        logger: logger.child({ component: 'membership' }),
        registry,
        load: () => resources.load(),
        isRegistered: id => nodeRegistry.get(id) !== undefined,
        // placement (issue 12): this node's health verdict and paused queue ride on its heartbeats
        selfHealth: () => health.report(),
        paused: () => executor.isPaused()
      }, {
        cluster: config.cluster,
        name: config.name,
        version: VERSION,
        ...config.membership
      })
      state.setMembers(membership)
      const scratchDir = taskUser === undefined ? join(config.dataDir, 'scratch') : `${config.dataDir}-scratch`
      // synced trees (--sync): blobs in the data dir, each attempt's tree as its scratch directory
      const sync = new SyncService({ rpc: mesh.rpc, logger, registry }, {
        cacheDir: join(config.dataDir, 'sync-cache'),
        cacheMaxBytes: config.executor.syncCacheSize,
        layout: config.executor.syncLayout,
        spareDir: join(config.dataDir, 'sync-spare'),
        treeOf: id => scratchPath(scratchDir, id),
        ...(taskUser === undefined ? {} : { taskGroup: taskUser.gid })
      })
      // --slots 0 makes a router: it routes, coordinates and takes over retries, and runs no task or worker
      const slots = config.executor.router ? 0 : config.executor.slots > 0 ? config.executor.slots : availableParallelism()
      if (config.executor.router) logger.info('this node is a router (--slots 0): it runs no tasks or workers')
      const executor = new Executor({ logger: logger.child({ component: 'executor' }), gpus: () => resources.gpus() }, {
        nodeId: mesh.peerId,
        nodeName: config.name,
        slots,
        memoryBytes: config.executor.memory > 0 ? config.executor.memory : totalmem(),
        queueLimit: config.executor.queueLimit,
        killGraceMs: config.executor.killGraceMs,
        maxLogBytes: config.executor.maxLogBytes,
        maxRetainedLogBytes: config.executor.retainedLogBytes,
        taskTypes: Object.fromEntries(Object.entries(config.tasks).map(([k, v]) => [k, { command: v.command, ...(v.env === undefined ? {} : { env: v.env }), ...(v.cwd === undefined ? {} : { cwd: v.cwd }) }])),
        baseEnv: process.env,
        // a task user cannot enter the data dir (0700): its tasks' scratch directories are beside it
        scratchDir,
        scratchRetentionMs: config.taskRetentionMs,
        cgroupRoot: config.executor.cgroupRoot,
        ...(taskUser === undefined ? {} : { taskUser }),
        ...(process.env.GRID_TEST_SPAWN_FAULT_FILE === undefined ? {} : { spawnFaultFile: process.env.GRID_TEST_SPAWN_FAULT_FILE }),
        ...(config.executor.router ? { router: true } : {})
      })
      const health = new NodeHealthMonitor({
        logger: logger.child({ component: 'health' }),
        gpuProblem: () => resources.gpusLost(),
        cannotRun: () => executor.spawnerDown() ? 'its task spawner is not running' : null,
        slowSince: () => membership.slowSince,
        peers: () => membership.view().slice(1).map(m => ({ alive: m.state === 'alive', ...(m.health === undefined ? {} : { health: m.health.health }) }))
      }, { dataDir: config.dataDir, ...config.health })
      // a synced task's tree that its task left as laid out may serve the next attempt of that tree (spare-tree.ts)
      executor.on('task:state', (id, st) => { if (st.finishedAt !== undefined) sync.ended(id) })
      executor.on('task:dispatch', (_id, o) => { if (o.ok) health.dispatched(); else health.dispatchFailed(o.reason) })
      const workerTypes: Record<string, WorkerTypeConfig> = {}
      for (const [name, t] of Object.entries(config.tasks)) {
        if (t.worker === undefined) continue
        const w = t.worker
        workerTypes[name] = {
          command: w.command,
          ...(t.env === undefined ? {} : { env: t.env }),
          ...(t.cwd === undefined ? {} : { cwd: t.cwd }),
          cpus: w.cpus,
          gpus: w.gpus,
          memory: w.memory,
          maxTasks: w.maxTasks,
          idleTimeoutMs: w.idleTimeoutMs,
          concurrency: w.concurrency,
          maxWorkers: w.maxWorkers > 0 ? w.maxWorkers : Math.max(1, w.cpus > 0 ? Math.floor(slots / w.cpus) : slots)
        }
      }
      const pool = new WorkerPool({
        logger: logger.child({ component: 'workers' }),
        reserve: need => executor.reserve(need),
        unreserve: held => { executor.unreserve(held) },
        cannotEverHold: need => executor.cannotEverHold(need),
        free: () => { const u = executor.usage(); return { slots: u.freeSlots, gpus: u.freeGpus, memoryBytes: u.freeMemoryBytes, totalGpus: resources.gpus().length } },
        // workers are forked by the same spawner as tasks, and die with the daemon like them
        processes: executor.processes
      }, {
        nodeId: mesh.peerId,
        nodeName: config.name,
        types: workerTypes,
        baseEnv: Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined)),
        queueLimit: config.executor.queueLimit,
        killGraceMs: config.executor.killGraceMs
      })
      const workers = new WorkerService({ mesh, membership, nodeRegistry, sessions, pool, logger: logger.child({ component: 'workers' }), registry }, config.name)
      resources.setUsageSource(() => {
        const u = executor.usage()
        return { running: u.running, queued: u.queued, slots, freeSlots: u.freeSlots, freeGpus: u.freeGpus, memoryBytes: executor.memoryBytes, freeMemoryBytes: u.freeMemoryBytes, done: u.done, failed: u.failed }
      })
      const tasks = new TaskService({
        peerId: mesh.peerId,
        rpc: mesh.rpc,
        members: membership,
        store: state,
        nodeRegistry,
        sessions,
        executor,
        pool,
        workers,
        sync,
        logger: logger.child({ component: 'tasks' }),
        registry,
        health
      }, { nodeName: config.name, region: config.region, retentionMs: config.taskRetentionMs, drainMarkPath: drainMarkPath(config.dataDir) })
      // jobs: one command over the cluster; their runs are tasks
      const jobs = new JobService({
        peerId: mesh.peerId,
        tasks,
        members: membership,
        store: state,
        resolveNode: n => resolveNode(membership.view(), nodeRegistry, n),
        nameOf: id => nodeNameOf(id, membership.view().find(m => m.id === id), nodeRegistry.get(id)?.value),
        workers,
        logger: logger.child({ component: 'jobs' }),
        registry
      }, { nodeName: config.name, retentionMs: config.taskRetentionMs })
      const stealer = new Stealer({ peerId: mesh.peerId, rpc: mesh.rpc, members: membership, nodeRegistry, executor, health: () => health.report().health, logger: logger.child({ component: 'tasks' }), registry }, {
        nodeName: config.name, capabilities: [...config.capabilities], labels: { ...config.labels }, region: config.region, enabled: config.placement.steal, stealAfterMs: config.placement.stealAfterMs
      })
      const queue = new QueueControl({ peerId: mesh.peerId, rpc: mesh.rpc, members: membership, nodeRegistry, executor, logger: logger.child({ component: 'tasks' }), onPausedChange: () => { membership.heartbeatNow() } })
      // workflows: DAGs of jobs; a plain job is a task, one with items or count a job
      const workflows = new WorkflowService({
        peerId: mesh.peerId,
        tasks,
        jobs,
        members: membership,
        store: state,
        resolveNode: n => resolveNode(membership.view(), nodeRegistry, n),
        logger: logger.child({ component: 'workflows' })
      }, { nodeName: config.name, retentionMs: config.taskRetentionMs })
      const selfRegistration = new SelfRegistration({ store: state, registry: nodeRegistry, forgotten, logger: logger.child({ component: 'registry' }) }, () => ({
        name: config.name,
        addrs: mesh.addrs(),
        region: config.region,
        labels: { ...config.labels },
        capabilities: [...config.capabilities],
        gpus: resources.gpus().map(g => ({ index: g.index, uuid: g.uuid, name: g.name, memoryTotalMiB: g.memoryTotalMiB })),
        version: VERSION,
        drain: membership.getSelfState() === 'draining',
        taskTypes: Object.keys(config.tasks),
        // only the worker types this node could ever host (a GPU worker needs GPUs here)
        workerTypes: Object.entries(workerTypes).filter(([, w]) => executor.cannotEverHold(w) === undefined).map(([name]) => name)
      }))
      // the registry tells the mesh where every member lives (those that left are still dialled, slowly: after a
      // whole cluster was stopped, every registry says every other node left); forgotten nodes leave the live view too
      const learn = (id: string): void => {
        const e = nodeRegistry.get(id)
        if (e !== undefined && id !== mesh.peerId) mesh.learn(id, e.value.addrs, { left: e.value.leftAt !== undefined })
      }
      for (const id of nodeRegistry.list().keys()) learn(id)
      state.on('change', e => { if (e.collection === 'registry' && !e.local) learn(e.key) })
      state.on('writer:dropped', id => { membership.forget(id) })
      const metrics = new MetricsServer({ logger: logger.child({ component: 'metrics' }), registry }, config.metricsListen)
      const control = new ControlServer({ logger: logger.child({ component: 'control' }), registry }, { socket: config.socket, maxConnections: config.control.maxConnections })

      let daemon: Daemon | undefined
      const parts: Part[] = [
        { name: 'resources', part: resources },
        { name: 'mesh', part: mesh },
        { name: 'state', part: state },
        { name: 'membership', part: membership },
        { name: 'executor', part: executor },
        { name: 'sync', part: sync },
        { name: 'workers', part: pool },
        { name: 'tasks', part: tasks },
        { name: 'jobs', part: jobs },
        { name: 'stealer', part: stealer },
        { name: 'workflows', part: workflows },
        { name: 'worker-service', part: workers },
        { name: 'registration', part: selfRegistration },
        { name: 'metrics', part: metrics },
        { name: 'control', part: control }
      ]
      daemon = new Daemon(config, logger, registry, mesh, membership, resources, state, control, metrics, swarmKey, parts, lock.release)
      const controlDeps: ControlDeps = {
        config,
        registry,
        version: VERSION,
        startedAt: daemon.startedAt,
        mesh,
        membership,
        resources,
        nodeRegistry,
        sessions,
        forgotten,
        tasks,
        jobs,
        workflows,
        workers,
        swarmKeyFingerprint: swarmKey?.fingerprint ?? null,
        metricsStatus: () => metrics.status(),
        limits: () => executor.limits(),
        sync,
        health,
        queue,
        stealer,
        state
      }
      const stats = new StatsSampler(controlDeps)
      parts.splice(parts.length - 1, 0, { name: 'stats', part: stats })
      for (const r of routes(controlDeps, stats)) control.add(r)
      return daemon
    } catch (err) {
      lock.release()
      throw err
    }
  }

  /** Starts every part in order; if one fails, the ones already started are stopped in reverse and the error thrown. */
  async start (): Promise<void> {
    for (const p of this.parts) {
      try {
        await p.part.start()
        this.started.push(p)
      } catch (err) {
        // a typed error is logged whole once, by whoever handles it (gridd's 'gridd could not start', with its hint)
        if (err instanceof GridError) this.logger.warn({ part: p.name, code: err.code }, 'start failed; rolling back')
        else this.logger.error({ err, part: p.name }, 'start failed; rolling back')
        await this.stopStarted()
        this.unlock()
        throw err
      }
    }
    this.logger.info({
      id: this.mesh.peerId,
      name: this.config.name,
      cluster: this.config.cluster,
      socket: this.config.socket,
      addrs: this.mesh.addrs(),
      version: this.version
    }, 'gridd started')
    const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)]
    const missing = GRIDD_NODE_FLAGS.filter(f => !given.includes(f))
    if (missing.length > 0) {
      this.logger.warn({ missing }, `Node runs gridd without ${missing.join(' ')}: expect about 100 MB more memory; start it through bin/gridd, npm start or the systemd unit, or add the flags`)
    }
  }

  /** Stops in reverse order: the control socket first, then a graceful leave, then the mesh. Safe to call twice. */
  async stop (): Promise<void> {
    this.stopping ??= (async () => {
      await this.stopStarted()
      this.unlock()
      this.logger.info('gridd stopped')
    })()
    await this.stopping
  }

  private async stopStarted (): Promise<void> {
    // reverse order: the control socket first (no new work), membership before the mesh (announce `left` while connected)
    for (const p of [...this.started].reverse()) {
      try {
        await p.part.stop()
      } catch (err) {
        this.logger.error({ err, part: p.name }, 'stop failed')
      }
    }
    this.started = []
  }
}
