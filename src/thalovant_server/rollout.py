"""Rolling skill changes out to the hubs of a runtime group, and the operations that track them.

A hub-skill command (install, update, remove) answers 202 with a ``requested`` operation;
:class:`SkillRollout` then drives it through the state machine of
:mod:`thalovant_server.operations`, one step per transaction so each state is visible:

1. **commit**: check the skill package (installed, the asked version, its skill starts) and
   write the group's desired state (a ``pending`` or ``removing`` desired skill);
2. **apply**: every hub of the group that is loaded in this process reloads its skills (live
   sessions stay connected; their next message meets the new skill set);
3. **verify**: every loaded hub of the group is seen running (or no longer running) the
   skill; the desired skill becomes ``installed`` (or is deleted) and the operation ``ready``.

A package that does not load or whose skill does not start fails the operation with
``install_failed``; one not converged by its deadline times out (``convergence_timeout``).
Operations of one group run one at a time. At start, :meth:`SkillRollout.resume` takes up the
operations a stopped server left unfinished (those past their deadline time out with
``runtime_timeout``).

The group-level routes (desired skills, configuration) call :meth:`SkillRollout.converge`,
which applies and verifies a whole group at once without an operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from thalovant_server.hub.runtime import HubObservation
from thalovant_server.hub.skills.registry import installed_packages, load_skills
from thalovant_server.operations import TERMINAL, ErrorCode, OperationStatus
from thalovant_server.store import operations as operation_rows
from thalovant_server.store import runtime_groups
from thalovant_server.store.engine import Store
from thalovant_server.store.models import DesiredSkill, Operation, utcnow

__all__ = [
    "DEFAULT_DEADLINE",
    "HUB_SKILL_KINDS",
    "LiveRuntime",
    "SkillCheck",
    "SkillRollout",
    "check_package",
]

log = logging.getLogger(__name__)

DEFAULT_DEADLINE = dt.timedelta(seconds=60)
HUB_SKILL_KINDS = ("hub.skill.install", "hub.skill.update", "hub.skill.remove")
VERIFY_ATTEMPTS = 5


class LiveRuntime(Protocol):
    """What the rollout needs of the hub runtime."""

    async def hub_changed(self, hub_id: str) -> None: ...

    def observe(self, hub_id: str) -> HubObservation | None: ...

    async def load(self, hub_id: str) -> HubObservation | None: ...


@dataclass(frozen=True, slots=True)
class SkillCheck:
    """Whether a skill can run here: its package version, or why not."""

    version: str | None
    error: str | None


def check_package(skill: str, version: str | None = None) -> SkillCheck:
    """The installed package of ``skill`` at ``version`` (``None``/``latest``: any), and its skill starts."""
    package = installed_packages().get(skill)
    if package is None:
        return SkillCheck(None, f"No installed skill package provides {skill!r}.")
    if version not in (None, "latest") and version != package.version:
        return SkillCheck(None, f"Version {version!r} of {skill!r} is not installed (installed: {package.version}).")
    failure = load_skills([skill]).failures.get(skill)
    if failure is not None:
        return SkillCheck(None, failure)
    return SkillCheck(package.version, None)


class SkillRollout:
    """Drives hub-skill operations and applies group changes to the live runtime."""

    def __init__(self, store: Store, runtime: LiveRuntime | None, *, deadline: dt.timedelta = DEFAULT_DEADLINE):
        self.store = store
        self.runtime = runtime
        self.deadline = deadline
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, operation_id: str) -> None:
        """Drive an accepted operation in the background."""
        task = asyncio.get_running_loop().create_task(self._drive_logged(operation_id), name=f"op-{operation_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resume(self) -> int:
        """Take up the operations a previous run left unfinished; how many."""
        async with self.store.session() as session:
            pending = [op.id for op in await operation_rows.unfinished(session, HUB_SKILL_KINDS)]
        for operation_id in pending:
            self.start(operation_id)
        return len(pending)

    async def close(self) -> None:
        """Stop driving (unfinished operations are resumed by the next start)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def wait_idle(self) -> None:
        """Until every operation started so far is terminal (or its task ended)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def observe(self, hub_id: str) -> HubObservation | None:
        """What a hub loaded in this process runs (``None`` when it is not loaded)."""
        return self.runtime.observe(hub_id) if self.runtime is not None else None

    async def load(self, hub_id: str) -> HubObservation | None:
        """What a hub runs, loading it into the runtime first if needed."""
        return await self.runtime.load(hub_id) if self.runtime is not None else None

    def _lock(self, group_id: str) -> asyncio.Lock:
        return self._locks.setdefault(group_id, asyncio.Lock())

    # -- whole groups ------------------------------------------------------------------------

    async def converge(self, group_id: str) -> None:
        """Apply a group's desired state to its loaded hubs and record what came of it."""
        async with self._lock(group_id):
            await self._apply(group_id)
            async with self.store.session() as session:
                for skill in await runtime_groups.desired_skills(session, group_id):
                    if skill.state == "removing":
                        await session.delete(skill)
                    elif skill.state == "pending" and skill.active:
                        self._settle(skill, check_package(skill.skill_id, skill.version_pin))

    async def apply_hubs(self, hub_ids: Iterable[str]) -> None:
        """Reload these hubs (e.g. after they moved to another group)."""
        if self.runtime is not None:
            for hub_id in hub_ids:
                await self.runtime.hub_changed(hub_id)

    async def _apply(self, group_id: str) -> list[str]:
        """Reload the group's hubs; their ids."""
        async with self.store.session() as session:
            group = await runtime_groups.group_by_id(session, group_id)
            hub_ids = [hub.id for hub in await runtime_groups.hubs_of_group(session, group)] if group else []
        await self.apply_hubs(hub_ids)
        return hub_ids

    @staticmethod
    def _settle(skill: DesiredSkill, check: SkillCheck) -> None:
        if check.error is not None:
            runtime_groups.set_state(skill, "failed", error=check.error)
            return
        if skill.installed_version != check.version:
            skill.previous_version = skill.installed_version
            skill.installed_version = check.version
        runtime_groups.set_state(skill, "installed")

    # -- operations --------------------------------------------------------------------------

    async def _drive_logged(self, operation_id: str) -> None:
        try:
            await self.drive(operation_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("operation %s could not be driven", operation_id)

    async def drive(self, operation_id: str) -> None:
        """Move one operation to a terminal state (or until this service closes)."""
        async with self.store.session() as session:
            operation = await operation_rows.operation_by_id(session, operation_id)
            group_id = str(operation.details.get("runtime_group_id", "")) if operation else ""
        if operation is None:
            return
        async with self._lock(group_id):
            for _ in range(VERIFY_ATTEMPTS + 2):
                status = await self._step(operation_id)
                if status is None or status in TERMINAL:
                    return
            await self._finish(operation_id, OperationStatus.TIMED_OUT, ErrorCode.CONVERGENCE_TIMEOUT, "not converged")

    async def _step(self, operation_id: str) -> OperationStatus | None:
        """One move of the operation; its new status (``None`` if it is gone)."""
        async with self.store.session() as session:
            operation = await operation_rows.operation_by_id(session, operation_id)
            if operation is None:
                return None
            status = OperationStatus(operation.status)
            if status in TERMINAL:
                return status
            if utcnow() >= operation.deadline_at:
                code = ErrorCode.CONVERGENCE_TIMEOUT if status is OperationStatus.APPLIED else ErrorCode.RUNTIME_TIMEOUT
                await self._fail(
                    session, operation, OperationStatus.TIMED_OUT, code, "The operation passed its deadline."
                )
                return OperationStatus.TIMED_OUT
            if status is OperationStatus.REQUESTED:
                return await self._commit(session, operation)
            if status is OperationStatus.APPLIED:
                return await self._verify(session, operation)
        # committed: reloading hubs happens outside any transaction
        await self._apply(str(operation.details.get("runtime_group_id", "")))
        async with self.store.session() as session:
            operation = await operation_rows.operation_by_id(session, operation_id)
            if operation is None or operation.status != OperationStatus.COMMITTED:
                return None if operation is None else OperationStatus(operation.status)
            operation_rows.advance(operation, OperationStatus.APPLIED)
            return OperationStatus.APPLIED

    async def _commit(self, session: Any, operation: Operation) -> OperationStatus:
        details = operation.details
        group_id, skill_name = str(details["runtime_group_id"]), str(details["skill"])
        group = await runtime_groups.group_by_id(session, group_id)
        if group is None:
            await self._fail(
                session, operation, OperationStatus.FAILED, ErrorCode.INSTALL_FAILED, "The runtime group is gone."
            )
            return OperationStatus.FAILED
        desired = await runtime_groups.desired_skill(session, group_id, skill_name)
        if operation.kind == "hub.skill.remove":
            if desired is not None:
                runtime_groups.set_state(desired, "removing")
            operation_rows.advance(operation, OperationStatus.COMMITTED)
            return OperationStatus.COMMITTED
        requested = details.get("version")
        check = check_package(skill_name, requested if isinstance(requested, str) else None)
        if desired is None:
            package = installed_packages().get(skill_name)
            desired = DesiredSkill(
                runtime_group_id=group_id,
                skill_id=skill_name,
                source_type="catalog",
                source_ref=package.package_name if package is not None else skill_name,
                marketplace_skill_id=details.get("marketplace_skill_id"),
                state="pending",
            )
            session.add(desired)
        if check.error is not None:
            runtime_groups.set_state(desired, "failed", error=check.error)
            await self._fail(session, operation, OperationStatus.FAILED, ErrorCode.INSTALL_FAILED, check.error)
            return OperationStatus.FAILED
        desired.version_pin = requested if isinstance(requested, str) and requested != "latest" else None
        desired.active = True
        runtime_groups.set_state(desired, "pending")
        operation_rows.advance(operation, OperationStatus.COMMITTED, details={"resolved_version": check.version})
        return OperationStatus.COMMITTED

    async def _verify(self, session: Any, operation: Operation) -> OperationStatus:
        details = operation.details
        group_id, skill_name = str(details["runtime_group_id"]), str(details["skill"])
        removing = operation.kind == "hub.skill.remove"
        group = await runtime_groups.group_by_id(session, group_id)
        hubs = await runtime_groups.hubs_of_group(session, group) if group is not None else []
        for hub in hubs:
            seen = self.observe(hub.id)
            if seen is None:
                continue  # not loaded here: it loads the desired state when a client connects
            if not removing and skill_name in seen.failures:
                message = seen.failures[skill_name]
                desired = await runtime_groups.desired_skill(session, group_id, skill_name)
                if desired is not None:
                    runtime_groups.set_state(desired, "failed", error=message)
                await self._fail(session, operation, OperationStatus.FAILED, ErrorCode.INSTALL_FAILED, message)
                return OperationStatus.FAILED
            runs = skill_name in seen.skills
            own = skill_name in (hub.spec.get("skills") or [])
            if (runs and removing and not own) or (not runs and not removing and hub.active):
                await asyncio.sleep(0.05)  # a concurrent reload; look again
                return OperationStatus.APPLIED
        desired = await runtime_groups.desired_skill(session, group_id, skill_name)
        version = details.get("resolved_version")
        if removing:
            if desired is not None:
                await session.delete(desired)
        elif desired is not None:
            self._settle(desired, SkillCheck(str(version) if version else None, None))
        action = {"hub.skill.install": "installed", "hub.skill.update": "updated"}.get(operation.kind, "removed")
        await runtime_groups.record(
            session,
            group_id=group_id,
            hub_id=details.get("hub_id"),
            kind="event",
            action=action,
            skill=skill_name,
            version=None if removing else (str(version) if version else None),
            actor_email=details.get("actor_email"),
            operation_id=operation.id,
        )
        operation_rows.advance(operation, OperationStatus.READY)
        return OperationStatus.READY

    async def _fail(
        self, session: Any, operation: Operation, status: OperationStatus, code: ErrorCode, message: str
    ) -> None:
        operation_rows.advance(operation, status, error_code=code.value, error_message=message)
        details = operation.details
        if await runtime_groups.group_by_id(session, str(details.get("runtime_group_id", ""))) is None:
            return  # the group and its history are gone
        await runtime_groups.record(
            session,
            group_id=str(details.get("runtime_group_id", "")),
            hub_id=details.get("hub_id"),
            kind="event",
            action="failed" if status is OperationStatus.FAILED else "timed_out",
            skill=str(details.get("skill", "")),
            version=details.get("version"),
            actor_email=details.get("actor_email"),
            operation_id=operation.id,
        )

    async def _finish(self, operation_id: str, status: OperationStatus, code: ErrorCode, message: str) -> None:
        async with self.store.session() as session:
            operation = await operation_rows.operation_by_id(session, operation_id)
            if operation is not None and operation.status not in TERMINAL:
                await self._fail(session, operation, status, code, message)
