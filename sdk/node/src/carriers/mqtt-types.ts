/** The MQTT connection a host provides to the MQTT carrier (the `mqtt` package in Node.js). */

import type { TlsOptions } from "../platform/types.js";

/** One MQTT 3.1.1 session with a broker. */
export interface MqttSession {
  /** Subscribe; the granted QoS per topic (128 or more is a refusal). */
  subscribe(topic: string, qos: 0 | 1): Promise<number[]>;
  /** Publish and wait for the broker's acknowledgement at QoS 1 (rejects after `timeoutMs`). */
  publish(topic: string, payload: Uint8Array, qos: 0 | 1, retain: boolean, timeoutMs: number): Promise<void>;
  /** Send DISCONNECT and close (best effort, bounded by `timeoutMs`). */
  end(timeoutMs: number): Promise<void>;
  /** Close the socket at once. */
  destroy(): void;
  readonly connected: boolean;
  onMessage: (topic: string, payload: Uint8Array) => void;
  onClose: (reason: string) => void;
}

/** What one broker connection needs. */
export interface MqttConnectOptions {
  host: string;
  port: number;
  username: string;
  password: string;
  clientId: string;
  keepaliveSeconds: number;
  will: { topic: string; payload: Uint8Array; qos: 0 | 1; retain: boolean };
  tls: TlsOptions;
  timeoutMs: number;
}

/** Opens MQTT sessions; rejects with `CarrierOpenError` or `CarrierTimeout`. */
export interface MqttConnector {
  connect(options: MqttConnectOptions): Promise<MqttSession>;
}
