/**
 * config: the daemon's settings.
 *
 * Owns the table of keys (YAML key, GRID_* variable, flag), the order of precedence (defaults < YAML file < GRID_*
 * environment < flags), and validation that reports every violation at once, naming each key and its source. The
 * result is frozen. It must not read anything after start, nor know how the values are used.
 */
export { loadConfig, type ConfigSources } from './load.ts'
export { FIELDS, DEFAULT_CONFIG_FILE, DEFAULT_LISTEN, LOG_FORMATS, LOG_LEVELS, type GridConfig, type LogFormat, type LogLevel } from './config.ts'
export type { FieldDef, TaskTypeDef, WorkerDef } from './fields.ts'
