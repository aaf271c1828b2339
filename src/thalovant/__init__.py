"""Thalovant Python SDK: control plane, identities and the runtime client.

The public API is what the SDK guide uses::

    from thalovant import ThalovantClient, ThalovantControlPlane

    api = ThalovantControlPlane()
    result = api.create_client_identity("hub-id", name="python-demo-client")
    with ThalovantClient(result.identity, protocol="wss") as client:
        print(client.ask("Tell me a short clean joke.").text)
"""

from typing import TYPE_CHECKING, Any

from thalovant.context import build_client_context
from thalovant.control import AsyncThalovantControlPlane, BootstrapIdentityResult, ThalovantControlPlane
from thalovant.errors import (
    ThalovantAdmissionFailedError,
    ThalovantAdmissionTimeoutError,
    ThalovantAlreadyLinkedError,
    ThalovantAPIError,
    ThalovantAPIUnreachableError,
    ThalovantAuthError,
    ThalovantClientKeyRejectedError,
    ThalovantConnectionError,
    ThalovantDeviceLoginDenied,
    ThalovantDeviceLoginExpired,
    ThalovantDeviceLoginPending,
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
)
from thalovant.events import (
    DEFAULT_PROTOCOL_PREFERENCE,
    EVENT_AUDIO_QUEUE,
    EVENT_INTENT_DESCRIBE,
    EVENT_INTENT_DESCRIBE_RESPONSE,
    EVENT_INTENT_FAILURE,
    EVENT_INTENT_LIST,
    EVENT_INTENT_LIST_RESPONSE,
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
    DisplayItem,
    ThalovantEvent,
)
from thalovant.hub_skills import HubSkill, HubSkillList, HubSkillOperation, HubSkillOperationState, HubSkillState
from thalovant.identity import MqttBrokerCredentials, ThalovantIdentity
from thalovant.models import (
    ThalovantBinary,
    ThalovantDoctorCheck,
    ThalovantDoctorReport,
    ThalovantHealth,
    ThalovantReply,
)
from thalovant.operations import OperationResource, OperationStatus
from thalovant.runtime.info import ThalovantConnectionInfo
from thalovant.runtime.intents import IntentDefinition, IntentRegistration
from thalovant.signin import (
    DEFAULT_NATIVE_SCOPES,
    HOME_ASSISTANT_CLIENT_ID,
    HOME_ASSISTANT_SCOPES,
    ApiToken,
    DeviceAuthorization,
    DeviceLoginRequest,
    NativeSignIn,
    begin_native_sign_in,
    challenge_for,
    new_verifier,
)

if TYPE_CHECKING:
    from thalovant.agent import AsyncThalovantAgent, ThalovantAgent
    from thalovant.client import AsyncThalovantClient, ThalovantClient

__version__ = "0.1.0"

_RUNTIME_CLIENTS = ("AsyncThalovantClient", "ThalovantClient")
_AGENTS = ("AsyncThalovantAgent", "ThalovantAgent")


def __getattr__(name: str) -> Any:
    """The runtime clients and agents load on first use, so the control plane and identities
    import without the data-plane stack; an import error in it surfaces here unchanged."""
    if name in _RUNTIME_CLIENTS:
        from thalovant import client

        return getattr(client, name)
    if name in _AGENTS:
        from thalovant import agent

        return getattr(agent, name)
    raise AttributeError(f"module 'thalovant' has no attribute {name!r}")


__all__ = [
    "DEFAULT_NATIVE_SCOPES",
    "DEFAULT_PROTOCOL_PREFERENCE",
    "EVENT_AUDIO_QUEUE",
    "EVENT_INTENT_DESCRIBE",
    "EVENT_INTENT_DESCRIBE_RESPONSE",
    "EVENT_INTENT_FAILURE",
    "EVENT_INTENT_LIST",
    "EVENT_INTENT_LIST_RESPONSE",
    "EVENT_OVOS_UTTERANCE_SPEAK",
    "EVENT_POLICY_DENIED",
    "EVENT_QUERY_TIMEOUT",
    "EVENT_RECOGNIZER_LOOP_UTTERANCE",
    "EVENT_SPEAK",
    "EVENT_UTTERANCE_HANDLED",
    "HIVE_BROADCAST",
    "HIVE_ESCALATE",
    "HIVE_INTERCOM",
    "HIVE_KINDS",
    "HIVE_PROPAGATE",
    "HIVE_RENDEZVOUS",
    "HOME_ASSISTANT_CLIENT_ID",
    "HOME_ASSISTANT_SCOPES",
    "HOME_REQUEST",
    "HOME_RESPONSE",
    "THALOVANT_CLAIMED_META_KEY",
    "ApiToken",
    "AsyncThalovantAgent",
    "AsyncThalovantClient",
    "AsyncThalovantControlPlane",
    "BootstrapIdentityResult",
    "DeviceAuthorization",
    "DeviceLoginRequest",
    "DisplayItem",
    "HubSkill",
    "HubSkillList",
    "HubSkillOperation",
    "HubSkillOperationState",
    "HubSkillState",
    "IntentDefinition",
    "IntentRegistration",
    "MqttBrokerCredentials",
    "NativeSignIn",
    "OperationResource",
    "OperationStatus",
    "ThalovantAPIError",
    "ThalovantAPIUnreachableError",
    "ThalovantAdmissionFailedError",
    "ThalovantAdmissionTimeoutError",
    "ThalovantAgent",
    "ThalovantAlreadyLinkedError",
    "ThalovantAuthError",
    "ThalovantBinary",
    "ThalovantClient",
    "ThalovantClientKeyRejectedError",
    "ThalovantConnectionError",
    "ThalovantConnectionInfo",
    "ThalovantControlPlane",
    "ThalovantDeviceLoginDenied",
    "ThalovantDeviceLoginExpired",
    "ThalovantDeviceLoginPending",
    "ThalovantDoctorCheck",
    "ThalovantDoctorReport",
    "ThalovantError",
    "ThalovantEvent",
    "ThalovantHealth",
    "ThalovantHubKeyChangedError",
    "ThalovantHubRefusedError",
    "ThalovantIdentity",
    "ThalovantIdentityError",
    "ThalovantPlanError",
    "ThalovantPolicyDeniedError",
    "ThalovantReply",
    "ThalovantRuntimeError",
    "ThalovantTimeoutError",
    "ThalovantUnansweredError",
    "ThalovantUnsupportedConnectionTypeError",
    "ThalovantUnsupportedProtocolError",
    "__version__",
    "begin_native_sign_in",
    "build_client_context",
    "challenge_for",
    "new_verifier",
]
