"""What a hub runs: its release (channel, mode, version, images) and the platform-image rule.

A hub's release lives in its spec: ``spec.release`` records the channel, mode, version,
reason, who released and when; ``spec.image`` is the listener image and
``spec.previewBridge.image`` the preview bridge image. Modes:

- ``channel``: follow a channel (``stable``, ``beta``, ``alpha``), image ``<repository>:<channel>``;
- ``pinned``: one version, image ``<repository>:<version>`` (the running server's version when
  none is named);
- ``custom``: the images given (``images`` implies ``custom`` unless a mode is named).

Options left out keep the hub's current release, else the workspace default (``stable``,
``channel``). Only an administrator may name an image outside the platform's repositories
(any tag or digest of them is fine): anyone else gets 403 ``platform_image_required`` with
the refused images and what is allowed. The same rule guards ``spec.image`` and
``spec.previewBridge.image`` in a hub PATCH.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from thalovant_server import __version__
from thalovant_server.api.problems import ApiProblem
from thalovant_server.api.views import timestamp
from thalovant_server.store.models import utcnow

__all__ = [
    "CHANNELS",
    "PLATFORM_REPOSITORIES",
    "ReleaseRequest",
    "check_spec_images",
    "released_spec",
]

CHANNELS = ("stable", "beta", "alpha")
PLATFORM_REPOSITORIES = {
    "listener": "ghcr.io/thalovant/hivemind-listener",
    "preview_bridge": "ghcr.io/thalovant/preview-bridge",
}
DEFAULT_CHANNEL = "stable"
IMAGE_PATTERN = r"^[a-z0-9][a-z0-9._/:-]{0,199}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$"
VERSION_PATTERN = r"^(?:latest|[0-9]+\.[0-9]+\.[0-9]+(?:[-+][0-9A-Za-z.-]{1,64})?)$"
_TAG = re.compile(r"^(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$")


class ReleaseImages(BaseModel):
    model_config = ConfigDict(extra="forbid")

    listener: str | None = Field(default=None, pattern=IMAGE_PATTERN, max_length=300)
    preview_bridge: str | None = Field(default=None, pattern=IMAGE_PATTERN, max_length=300)


class ReleaseRequest(BaseModel):
    channel: Literal["stable", "beta", "alpha"] | None = None
    mode: Literal["channel", "pinned", "custom"] | None = None
    version: str | None = Field(default=None, pattern=VERSION_PATTERN, max_length=100)
    images: ReleaseImages | None = None
    reason: str | None = Field(default=None, max_length=500)


def _platform_image(component: str, image: str) -> bool:
    repository = PLATFORM_REPOSITORIES[component]
    return image.startswith(repository) and bool(_TAG.match(image[len(repository) :]))


def _check_images(images: Mapping[str, str], *, admin: bool) -> None:
    """403 ``platform_image_required`` unless every image is a platform image (or ``admin``)."""
    if admin:
        return
    refused = {key: image for key, image in images.items() if not _platform_image(key, image)}
    if refused:
        raise ApiProblem(
            403,
            "Only an administrator can run an image the platform does not release: " + ", ".join(sorted(refused)),
            code="platform_image_required",
            refused_images=refused,
            allowed_images={
                key: [f"{repo}:{channel}" for channel in CHANNELS] for key, repo in PLATFORM_REPOSITORIES.items()
            },
            allowed_repositories=dict(PLATFORM_REPOSITORIES),
        )


def _spec_images(spec: Mapping[str, Any]) -> dict[str, str]:
    images: dict[str, str] = {}
    listener = spec.get("image")
    if isinstance(listener, str):
        images["listener"] = listener
    bridge = spec.get("previewBridge")
    if isinstance(bridge, Mapping) and isinstance(bridge.get("image"), str):
        images["preview_bridge"] = str(bridge["image"])
    return images


def check_spec_images(old: Mapping[str, Any], new: Mapping[str, Any], *, admin: bool) -> None:
    """The platform-image rule for a spec change: a changed image must be a platform image."""
    before = _spec_images(old)
    changed = {key: image for key, image in _spec_images(new).items() if before.get(key) != image}
    _check_images(changed, admin=admin)


def released_spec(spec: Mapping[str, Any], body: ReleaseRequest, *, admin: bool, user_id: str) -> dict[str, Any]:
    """The hub spec after a release (see the module); raises the 403 of the image rule."""
    current = spec.get("release") if isinstance(spec.get("release"), Mapping) else {}
    assert isinstance(current, Mapping)
    given = {k: v for k, v in (body.images.model_dump() if body.images else {}).items() if v is not None}
    mode = body.mode or ("custom" if given else str(current.get("mode") or "channel"))
    channel = body.channel or str(current.get("channel") or DEFAULT_CHANNEL)
    version = body.version or (current.get("version") if mode == "pinned" else None)
    if mode == "pinned" and (not version or version == "latest"):
        version = __version__
    if mode == "custom":
        images = {**_spec_images(spec), **given}
    else:
        tag = version if mode == "pinned" else channel
        images = {key: f"{repo}:{tag}" for key, repo in PLATFORM_REPOSITORIES.items()}
        images.update(given)
    _check_images(given, admin=admin)
    out = copy.deepcopy(dict(spec))
    out["release"] = {
        "channel": channel,
        "mode": mode,
        "version": version,
        "images": images,
        "reason": body.reason,
        "released_at": timestamp(utcnow()),
        "released_by": user_id,
        "runtime_version": __version__,
    }
    if "listener" in images:
        out["image"] = images["listener"]
    if "preview_bridge" in images:
        bridge = dict(out.get("previewBridge") or {})
        bridge["image"] = images["preview_bridge"]
        out["previewBridge"] = bridge
    return out
