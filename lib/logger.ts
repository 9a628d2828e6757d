import { Logger as PowertoolsLogger } from "@aws-lambda-powertools/logger";

/** The narrow logging interface the handlers depend on. Never pass a key, token or secret value. */
export interface Logger {
  debug(message: string, extra?: Record<string, unknown>): void;
  info(message: string, extra?: Record<string, unknown>): void;
  warn(message: string, extra?: Record<string, unknown>): void;
  error(message: string, extra?: Record<string, unknown>): void;
}

/**
 * Structured JSON logs through Powertools for AWS Lambda. Level from `POWERTOOLS_LOG_LEVEL`
 * (or `LOG_LEVEL`), default INFO.
 */
export function createLogger(serviceName = "wallcrawler-api"): Logger {
  const logger = new PowertoolsLogger({ serviceName });
  return {
    debug: (message, extra) => (extra ? logger.debug(message, extra) : logger.debug(message)),
    info: (message, extra) => (extra ? logger.info(message, extra) : logger.info(message)),
    warn: (message, extra) => (extra ? logger.warn(message, extra) : logger.warn(message)),
    error: (message, extra) => (extra ? logger.error(message, extra) : logger.error(message)),
  };
}

/** A logger that keeps its lines in memory (tests read them back). */
export function createMemoryLogger(): Logger & {
  lines: { level: string; message: string; extra?: Record<string, unknown> }[];
} {
  const lines: { level: string; message: string; extra?: Record<string, unknown> }[] = [];
  const at = (level: string) => (message: string, extra?: Record<string, unknown>) => {
    lines.push({ level, message, extra });
  };
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}
