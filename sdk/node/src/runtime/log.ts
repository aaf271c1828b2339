/**
 * The SDK's log: warnings and errors go to `console` by default, like Python's last-resort
 * handler; `setLogger` routes them (and the info lines) elsewhere. Nothing logged carries a secret.
 */

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

let current: Logger = {
  info: () => undefined,
  warn: (message) => console.warn(`thalovant: ${message}`),
  error: (message) => console.error(`thalovant: ${message}`),
};

/** Route the SDK's log lines to `logger`. */
export function setLogger(logger: Logger): void {
  current = logger;
}

export const log: Logger = {
  info: (message) => current.info(message),
  warn: (message) => current.warn(message),
  error: (message) => current.error(message),
};
