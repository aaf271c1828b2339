/** `connectionInfo()`: what the client knows about its link, without asking the hub (spec 9). */

export const PHASES = ["idle", "connecting", "handshake", "ready", "closed", "error"] as const;
export type ConnectionPhase = (typeof PHASES)[number];

/** Cut everything after `?` (URLs carry the credential in their query). */
export function redactError(message: string | undefined): string | undefined {
  return message === undefined ? undefined : (message.split("?", 1)[0] as string);
}

/** When and how fast a link was set up; milliseconds, UTC ISO times. */
export interface LinkTimings {
  startedAt: string | undefined;
  connectedAt: string | undefined;
  transportOpenMs: number | undefined;
  socketOpenMs: number | undefined;
  handshakeMs: number | undefined;
  connectMs: number | undefined;
  attempts: number;
}

/** The timings of no link yet. */
export const NO_TIMINGS: LinkTimings = {
  startedAt: undefined,
  connectedAt: undefined,
  transportOpenMs: undefined,
  socketOpenMs: undefined,
  handshakeMs: undefined,
  connectMs: undefined,
  attempts: 0,
};

/** A snapshot of the client's connection: its phase, its link and that link's timings. */
export interface ThalovantConnectionInfo extends LinkTimings {
  phase: ConnectionPhase;
  protocol: string;
  endpoint: string | undefined;
  sessionId: string | undefined;
  noisePattern: string | undefined;
  reconnects: number;
  lastError: string | undefined;
}
