"""Users, workspaces, memberships and bearer tokens."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from thalovant_server.store.models import ApiToken, Membership, User, Workspace, canonical_id, utcnow
from thalovant_server.store.pagination import Page, keyset_page


class EmailTaken(ValueError):
    """A user with this e-mail address already exists."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password_hash: str,
    display_name: str = "",
    role: str = "user",
) -> User:
    """A user with a personal workspace of their own (they are its owner)."""
    address = normalise_email(email)
    user = User(
        email=address,
        password_hash=password_hash,
        display_name=display_name or address.split("@", 1)[0],
        role=role,
    )
    workspace = Workspace(name=f"{user.display_name}'s workspace")
    session.add_all([user, workspace])
    try:
        await session.flush()
    except IntegrityError:
        raise EmailTaken(address) from None
    session.add(Membership(user_id=user.id, workspace_id=workspace.id, role="owner"))
    await session.flush()
    return user


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == normalise_email(email)))


async def user_by_id(session: AsyncSession, user_id: str) -> User | None:
    return await session.get(User, user_id)


async def workspace_ids(session: AsyncSession, user_id: str) -> list[str]:
    """The user's workspaces, the personal (oldest) one first."""
    rows = await session.scalars(
        select(Membership.workspace_id)
        .where(Membership.user_id == user_id)
        .order_by(Membership.created_at, Membership.id)
    )
    return list(rows.all())


async def add_token(
    session: AsyncSession,
    *,
    user_id: str,
    kind: str,
    token_hash: str,
    scopes: Sequence[str],
    expires_at: dt.datetime | None,
    name: str = "",
) -> ApiToken:
    token = ApiToken(
        user_id=user_id, kind=kind, name=name, token_hash=token_hash, scopes=list(scopes), expires_at=expires_at
    )
    session.add(token)
    await session.flush()
    return token


async def token_by_hash(session: AsyncSession, token_hash: str) -> ApiToken | None:
    """The live token with this hash (expired tokens are not returned)."""
    token = await session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))
    if token is None:
        return None
    if token.expires_at is not None and token.expires_at <= utcnow():
        return None
    return token


async def list_api_tokens(session: AsyncSession, user_id: str, *, limit: int, cursor: str | None) -> Page[ApiToken]:
    statement = select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.kind == "api")
    return await keyset_page(
        session, statement, created_at=ApiToken.created_at, id_column=ApiToken.id, limit=limit, cursor=cursor
    )


async def token_of(session: AsyncSession, *, user_id: str, token_id: str) -> ApiToken | None:
    """One of the user's tokens by id (live or expired), or None."""
    canonical = canonical_id(token_id)
    if canonical is None:
        return None
    return await session.scalar(select(ApiToken).where(ApiToken.id == canonical, ApiToken.user_id == user_id))


async def revoke_sessions(session: AsyncSession, *, user_id: str, keep: str | None = None) -> int:
    """Delete the user's session tokens (password sign-ins) except ``keep``; returns how many."""
    statement = delete(ApiToken).where(ApiToken.user_id == user_id, ApiToken.kind == "session")
    if keep is not None:
        statement = statement.where(ApiToken.id != keep)
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


async def purge_expired_tokens(session: AsyncSession) -> None:
    await session.execute(delete(ApiToken).where(ApiToken.expires_at.is_not(None), ApiToken.expires_at <= utcnow()))
