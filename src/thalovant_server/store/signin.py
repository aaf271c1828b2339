"""Sign-in grants: device authorizations (RFC 8628), authorization codes (PKCE) and the
cookie sessions of the server's sign-in pages.

Secrets are stored only as SHA-256 hex: the device code, the authorization code and the
browser session token. A user code is short and public by design (a person types it); it is
unique among stored grants, and grants are purged once expired.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import JSON, ForeignKey, Integer, String, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from thalovant_server.store.models import ApiToken, Base, UTCDateTime, new_id, utcnow

__all__ = [
    "AuthorizationCode",
    "BrowserSession",
    "DeviceGrant",
    "UserCodeTaken",
    "add_authorization_code",
    "add_browser_session",
    "add_device_grant",
    "authorization_code_by_hash",
    "browser_session_by_hash",
    "delete_browser_session",
    "device_grant_by_code_hash",
    "device_grant_by_user_code",
    "purge_expired",
    "revoke_tokens_of_app",
]

PENDING = "pending"
APPROVED = "approved"
DENIED = "denied"
ISSUED = "issued"


class UserCodeTaken(ValueError):
    """Another stored grant already has this user code (draw a new one)."""


class DeviceGrant(Base):
    """One device authorization: ``pending`` until a person approves or denies it, then
    ``approved``/``denied``; ``issued`` once the device collected its token."""

    __tablename__ = "device_grants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    device_code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_code: Mapped[str] = mapped_column(String(16), unique=True)
    app_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    client_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    device_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    interval: Mapped[int] = mapped_column(Integer)
    last_polled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True)
    token_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    def expired(self, now: dt.datetime | None = None) -> bool:
        return self.expires_at <= (now or utcnow())


class AuthorizationCode(Base):
    """A native sign-in code: single use, bound to its app, redirect URI and PKCE challenge."""

    __tablename__ = "authorization_codes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    app_id: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    code_challenge: Mapped[str] = mapped_column(String(128))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class BrowserSession(Base):
    """A person signed in on the server's pages (a cookie; never a bearer token of the API)."""

    __tablename__ = "browser_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)


async def add_device_grant(
    session: AsyncSession,
    *,
    device_code_hash: str,
    user_code: str,
    app_id: str | None,
    client_name: str | None,
    device_name: str | None,
    scopes: Sequence[str],
    interval: int,
    expires_at: dt.datetime,
) -> DeviceGrant:
    """A new pending grant; :class:`UserCodeTaken` when the user code collides."""
    grant = DeviceGrant(
        device_code_hash=device_code_hash,
        user_code=user_code,
        app_id=app_id,
        client_name=client_name,
        device_name=device_name,
        scopes=list(scopes),
        status=PENDING,
        interval=interval,
        expires_at=expires_at,
    )
    if await session.scalar(select(DeviceGrant.id).where(DeviceGrant.user_code == user_code)) is not None:
        raise UserCodeTaken(user_code)
    session.add(grant)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise UserCodeTaken(user_code) from None
    return grant


async def device_grant_by_code_hash(session: AsyncSession, device_code_hash: str) -> DeviceGrant | None:
    return await session.scalar(select(DeviceGrant).where(DeviceGrant.device_code_hash == device_code_hash))


async def device_grant_by_user_code(session: AsyncSession, user_code: str) -> DeviceGrant | None:
    return await session.scalar(select(DeviceGrant).where(DeviceGrant.user_code == user_code))


async def revoke_tokens_of_app(session: AsyncSession, *, user_id: str, app_id: str, keep_grant: str) -> int:
    """Delete the token (and the grant) an earlier approval of ``app_id`` issued to ``user_id``:
    a registered app holds one token per user, so re-approving it replaces the old one.
    Returns how many tokens were deleted."""
    earlier = list(
        (
            await session.scalars(
                select(DeviceGrant).where(
                    DeviceGrant.user_id == user_id, DeviceGrant.app_id == app_id, DeviceGrant.id != keep_grant
                )
            )
        ).all()
    )
    token_ids = [grant.token_id for grant in earlier if grant.token_id]
    deleted = 0
    if token_ids:
        result = await session.execute(delete(ApiToken).where(ApiToken.id.in_(token_ids), ApiToken.user_id == user_id))
        deleted = int(getattr(result, "rowcount", 0) or 0)
    for grant in earlier:
        if grant.status == ISSUED:
            await session.delete(grant)
    return deleted


async def add_authorization_code(
    session: AsyncSession,
    *,
    code_hash: str,
    app_id: str,
    redirect_uri: str,
    code_challenge: str,
    scopes: Sequence[str],
    user_id: str,
    expires_at: dt.datetime,
) -> AuthorizationCode:
    code = AuthorizationCode(
        code_hash=code_hash,
        app_id=app_id,
        redirect_uri=redirect_uri,
        code_challenge=code_challenge,
        scopes=list(scopes),
        user_id=user_id,
        expires_at=expires_at,
    )
    session.add(code)
    await session.flush()
    return code


async def authorization_code_by_hash(session: AsyncSession, code_hash: str) -> AuthorizationCode | None:
    return await session.scalar(select(AuthorizationCode).where(AuthorizationCode.code_hash == code_hash))


async def add_browser_session(
    session: AsyncSession, *, user_id: str, token_hash: str, expires_at: dt.datetime
) -> BrowserSession:
    row = BrowserSession(user_id=user_id, token_hash=token_hash, expires_at=expires_at)
    session.add(row)
    await session.flush()
    return row


async def browser_session_by_hash(session: AsyncSession, token_hash: str) -> BrowserSession | None:
    """The live browser session with this token hash (an expired one is not returned)."""
    row = await session.scalar(select(BrowserSession).where(BrowserSession.token_hash == token_hash))
    if row is None or row.expires_at <= utcnow():
        return None
    return row


async def delete_browser_session(session: AsyncSession, token_hash: str) -> None:
    await session.execute(delete(BrowserSession).where(BrowserSession.token_hash == token_hash))


async def purge_expired(session: AsyncSession, *, grace: dt.timedelta = dt.timedelta(days=1)) -> None:
    """Forget grants, codes and browser sessions that expired more than ``grace`` ago (a
    grant is kept a little past its expiry so a late poll still gets ``expired_token``).

    A registered app's issued grant stays while its token lives: it is how a later approval
    of the same app finds the token to replace.
    """
    cutoff = utcnow() - grace
    live_tokens = select(ApiToken.id)
    await session.execute(
        delete(DeviceGrant).where(
            DeviceGrant.expires_at <= cutoff,
            or_(
                DeviceGrant.app_id.is_(None),
                DeviceGrant.status != ISSUED,
                DeviceGrant.token_id.is_(None),
                DeviceGrant.token_id.not_in(live_tokens),
            ),
        )
    )
    await session.execute(delete(AuthorizationCode).where(AuthorizationCode.expires_at <= cutoff))
    await session.execute(delete(BrowserSession).where(BrowserSession.expires_at <= utcnow()))
