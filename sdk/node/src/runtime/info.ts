/** `connectionInfo()`: what the client knows about its link, without asking the hub (spec 9). */

export const PHASES = ["idle", "connecting", "handshake", "ready", "closed", "error"] as const;
export type ConnectionPhase = (typeof PHASES)[number];

/** Cut everything after `?` (URLs carry the credential in their query). */
export function redactError(message: string | undefined): string | undefined {
  return message === undefined ? undefined : (message.split("?", 1)[0] as string);
}

/** A snapshot of the client's connection; timings in milliseconds, times in UTC ISO. */
export interface ThalovantConnectionInfo {
  phase: ConnectionPhase;
  protocol: string;
  endpoint: string | undefined;
  sessionId: string | undefined;
  noisePattern: string | undefined;
  startedAt: string | undefined;
  connectedAt: string | undefined;
  transportOpenMs: number | undefined;
  socketOpenMs: number | undefined;
  handshakeMs: number | undefined;
  connectMs: number | undefined;
  attempts: number;
  reconnects: number;
  lastError: string | undefined;
}
