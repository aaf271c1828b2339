"""Every control-plane method of the public SDK 0.9.7 exists in ours, sync and async, with the
same parameter names, so calls written for it port unchanged.

The public SDK is read as a black box from its own venv (``inspect`` of its two classes). Our
sync client's members are twins generated from the async ones (``thalovant.runtime.twin``): a
``blocking`` twin is a sync method with its async original's parameters, an ``attribute`` twin
reads like a property.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures.peers import run_python

from thalovant import AsyncThalovantControlPlane, ThalovantControlPlane
from thalovant.runtime.twin import attribute, blocking

pytestmark = pytest.mark.interop

NOT_PORTED = {"session": "the public SDK's aiohttp session object; ours keeps its httpx client private"}

INTROSPECT = """
import inspect, json, thalovant
out = {}
for cls in (thalovant.ThalovantControlPlane, thalovant.AsyncThalovantControlPlane):
    members = {}
    for name, value in inspect.getmembers(cls):
        if name.startswith("_"):
            continue
        if isinstance(value, property):
            members[name] = {"kind": "property"}
        elif callable(value):
            params = [[p.name, str(p.kind)] for p in list(inspect.signature(value).parameters.values())[1:]]
            members[name] = {"kind": "async" if inspect.iscoroutinefunction(value) else "sync", "params": params}
    out[cls.__name__] = members
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def public_surface(public_sdk_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    done = run_python(public_sdk_python, INTROSPECT, cwd=tmp_path_factory.mktemp("introspect"))
    assert done.returncode == 0, done.stderr[-3000:]
    surface: dict[str, Any] = json.loads(done.stdout)
    return surface


@pytest.mark.parametrize("cls", [ThalovantControlPlane, AsyncThalovantControlPlane], ids=lambda c: c.__name__)
def test_every_public_method_is_ours_too(cls: type, public_surface: dict[str, Any]) -> None:
    public = public_surface[cls.__name__]
    assert len(public) >= 50  # the public SDK's surface was read, not an empty answer
    missing, differing = [], []
    for name, member in sorted(public.items()):
        if name in NOT_PORTED:
            continue
        ours = inspect.getattr_static(cls, name, None)
        if ours is None:
            missing.append(name)
            continue
        if member["kind"] == "property":
            if not isinstance(ours, property | attribute):
                differing.append(f"{name}: not a property")
            continue
        method = ours._method if isinstance(ours, blocking) else getattr(cls, name)
        is_async = inspect.iscoroutinefunction(method) and not isinstance(ours, blocking)
        if is_async != (member["kind"] == "async"):
            differing.append(f"{name}: {'async' if is_async else 'sync'} here, {member['kind']} there")
        ours_params = inspect.signature(method).parameters
        for param, kind in member["params"]:
            if kind in ("VAR_POSITIONAL", "VAR_KEYWORD"):
                continue
            if param not in ours_params:
                differing.append(f"{name}: no parameter {param!r}")
            elif kind == "POSITIONAL_OR_KEYWORD" and ours_params[param].kind is inspect.Parameter.KEYWORD_ONLY:
                differing.append(f"{name}: {param!r} is keyword-only here, positional there")
    assert missing == [], f"{cls.__name__} lacks {missing}"
    assert differing == [], "\n".join(differing)
