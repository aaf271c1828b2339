/**
 * The per-user config file's rules (dataplane.md 1.5): which identity a document's profile
 * selects. Where the file lives and how it is read (0600, YAML) is the platform's job.
 */

import { ThalovantIdentityError } from "./errors.js";
import { isObject, type JsonObject } from "./protocol/bytes.js";

/**
 * The identity object of a config document: with `profiles`, the named (else selected, else
 * `default`) profile's `identity` or the profile itself; without, the top-level `identity` or
 * the whole document.
 */
export function selectIdentityMapping(document: unknown, profile: string | undefined, where = "config"): JsonObject {
  if (!isObject(document)) throw new ThalovantIdentityError(`The ${where} is not a YAML mapping.`);
  const profiles = document.profiles;
  if (isObject(profiles)) {
    let name = profile;
    if (name === undefined) {
      for (const key of ["profile", "default_profile", "defaultProfile"]) {
        const value = document[key];
        if (typeof value === "string" && value.trim() !== "") {
          name = value.trim();
          break;
        }
      }
    }
    name = name || "default";
    const chosen = Object.hasOwn(profiles, name) ? profiles[name] : undefined;
    if (!isObject(chosen)) {
      const known = Object.keys(profiles).join(", ") || "none";
      throw new ThalovantIdentityError(`The ${where} has no profile ${JSON.stringify(name)} (profiles: ${known}).`);
    }
    return isObject(chosen.identity) ? chosen.identity : chosen;
  }
  if (profile !== undefined) {
    throw new ThalovantIdentityError(`The ${where} has no 'profiles' mapping, so profile ${JSON.stringify(profile)} cannot be chosen.`);
  }
  return isObject(document.identity) ? document.identity : document;
}
