/**
 * The public API shared by the Node.js and browser entry points (`index.ts`, `browser.ts`), which
 * each install their host before re-exporting this module.
 */

export { DEFAULT_SEND_TIMEOUT_MS, ThalovantClient, ThalovantConversation } from "./client.js";
export type { ActionOptions, AskOptions, ClientOptions, CodeOptions, EventOptions, UtteranceOptions } from "./client.js";
export { buildClientContext } from "./context.js";
export type { ClientContextOptions } from "./context.js";
export {
  BootstrapIdentityResult,
  ThalovantControlPlane,
  cleanSiteId,
  normalizeApiUrl,
  scrubSecrets,
} from "./control.js";
export type {
  ControlPlaneOptions,
  CreateClientIdentityOptions,
  Page,
  RequestOptions,
  SelectedHubEndpoint,
  ThalovantClientResource,
  ThalovantHub,
} from "./control.js";
export {
  ThalovantAlreadyLinkedError,
  ThalovantAPIError,
  ThalovantAPIUnreachableError,
  ThalovantAuthError,
  ThalovantClientKeyRejectedError,
  ThalovantConnectionError,
  ThalovantError,
  ThalovantHubKeyChangedError,
  ThalovantHubRefusedError,
  ThalovantIdentityError,
  ThalovantPlanError,
  ThalovantPolicyDeniedError,
  ThalovantRuntimeError,
  ThalovantTimeoutError,
  ThalovantUnansweredError,
  ThalovantUnsupportedConnectionTypeError,
  ThalovantUnsupportedProtocolError,
  apiErrorFromResponse,
} from "./errors.js";
export type { PolicyQuota } from "./errors.js";
export {
  DEFAULT_PROTOCOL_PREFERENCE,
  EVENT_AUDIO_QUEUE,
  EVENT_INTENT_DESCRIBE,
  EVENT_INTENT_DESCRIBE_RESPONSE,
  EVENT_INTENT_FAILURE,
  EVENT_INTENT_LIST,
  EVENT_INTENT_LIST_RESPONSE,
  EVENT_INTENT_UNMATCHED,
  EVENT_OVOS_UTTERANCE_SPEAK,
  EVENT_POLICY_DENIED,
  EVENT_QUERY_TIMEOUT,
  EVENT_RECOGNIZER_LOOP_UTTERANCE,
  EVENT_SPEAK,
  EVENT_UTTERANCE_HANDLED,
  HIVE_BROADCAST,
  HIVE_ESCALATE,
  HIVE_INTERCOM,
  HIVE_KINDS,
  HIVE_PROPAGATE,
  HIVE_RENDEZVOUS,
  HOME_REQUEST,
  HOME_RESPONSE,
  THALOVANT_CLAIMED_META_KEY,
  ThalovantEvent,
} from "./events.js";
export type { DisplayItem } from "./events.js";
export { MqttBrokerCredentials, ThalovantIdentity } from "./identity.js";
export type { FromConfigOptions, FromEnvOptions } from "./identity.js";
export { ThalovantDoctorReport, ThalovantHealth, ThalovantReply } from "./models.js";
export type { ThalovantDoctorCheck } from "./models.js";
export { LayoutNoiseStore, LocalStorageNoiseStore, MemoryNoiseStore, NoiseStateError } from "./noise-store.js";
export type { KeyValueStorage, NoiseStateStore, StateFiles } from "./noise-store.js";
export { HubProtocolSettings } from "./protocols.js";
export type { HubProtocol } from "./protocols.js";
export { derivePsk } from "./protocol/psk.js";
export type { PskDeriver } from "./protocol/psk.js";
export type { JsonObject } from "./protocol/bytes.js";
export type { ThalovantConnectionInfo } from "./runtime/info.js";
export { setLogger } from "./runtime/log.js";
export type { Logger } from "./runtime/log.js";
export type { EventHandler, Subscription } from "./runtime/subscriptions.js";
export type { Wire1Frame } from "./protocol/wire1.js";
export { VERSION } from "./version.js";
