/**
 * Client-side carriers: I/O adapters between a transport and the protocol engine. A carrier is
 * chosen per identity and protocol with {@link carrierFor}.
 */

import { ThalovantUnsupportedProtocolError } from "../errors.js";
import type { ThalovantIdentity } from "../identity.js";
import { httpsPinId } from "../noise-store.js";
import { platform } from "../platform/current.js";
import type { TlsOptions } from "../platform/types.js";
import { type HubProtocol, PROTOCOLS } from "../protocols.js";
import type { Carrier } from "./base.js";
import { HTTPSCarrier } from "./https.js";
import { MQTTCarrier, mqttSettings } from "./mqtt.js";
import { WSSCarrier } from "./wss.js";

export { type Carrier, CarrierClosed, CarrierError, CarrierOpenError, CarrierRefused, CarrierTimeout } from "./base.js";

export interface CarrierOptions {
  userAgent: string;
  tls: TlsOptions;
}

/**
 * The carrier to use (spec 1.6): a forced one if the identity can use it; else WSS (flag on and
 * an endpoint), then HTTPS (flag on), then MQTT with broker credentials, then HTTPS.
 */
export function selectProtocol(identity: ThalovantIdentity, protocol: string | undefined): HubProtocol {
  if (protocol !== undefined) {
    const lowered = String(protocol).trim().toLowerCase();
    const wanted = PROTOCOLS.find((name) => name === (lowered === "http" ? "https" : lowered));
    if (wanted === undefined) {
      throw new ThalovantUnsupportedProtocolError(`Unknown protocol ${JSON.stringify(protocol)}; use one of ${PROTOCOLS.join(", ")}.`);
    }
    if (wanted === "wss" && !identity.endpointFor("wss")) {
      throw new ThalovantUnsupportedProtocolError("This identity has no WSS endpoint; it cannot use wss.");
    }
    if (wanted === "mqtt" && !identity.mqtt) {
      throw new ThalovantUnsupportedProtocolError("This identity has no MQTT broker credentials; it cannot use mqtt.");
    }
    return wanted;
  }
  if (identity.supportsProtocol("wss") && identity.endpointFor("wss")) return "wss";
  if (identity.supportsProtocol("https")) return "https";
  if (identity.supportsProtocol("mqtt") && identity.mqtt && platform().mqtt !== undefined) return "mqtt";
  return "https";
}

/** A fresh carrier of `protocol` for `identity`; {@link ThalovantUnsupportedProtocolError} when unusable. */
export function carrierFor(protocol: HubProtocol, identity: ThalovantIdentity, options: CarrierOptions): Carrier {
  const common = { accessKey: identity.accessKey, userAgent: options.userAgent, tls: options.tls };
  switch (protocol) {
    case "wss": {
      const endpoint = identity.endpointFor("wss");
      if (!endpoint) throw new ThalovantUnsupportedProtocolError("This identity has no WSS endpoint.");
      return new WSSCarrier(endpoint, common);
    }
    case "https":
      // An http:// base is refused when the carrier opens (a connection error at connect, spec 1.6).
      return new HTTPSCarrier(identity.endpointBase(), common);
    case "mqtt": {
      const settings = mqttSettings(identity.mqtt);
      if (platform().mqtt === undefined) {
        throw new ThalovantUnsupportedProtocolError("MQTT needs a TCP connection to the broker: use the Node.js build of the SDK.");
      }
      // MQTT shares the HTTPS pin (spec 1.8).
      return new MQTTCarrier(settings, { pinId: httpsPinId(identity.endpointBase()), siteId: identity.siteId, tls: options.tls });
    }
    default:
      throw new ThalovantUnsupportedProtocolError(`Unknown protocol ${JSON.stringify(protocol)}; use one of ${PROTOCOLS.join(", ")}.`);
  }
}
