"""Console accounts over the ``users`` table: who may read call records, and with which role.

Passwords are stored as Argon2id hashes (memory-hard, so a stolen table is slow to crack). Every
change that should end existing sessions (new password, disabled account, logout) bumps the
user's ``session_version``; session cookies carry the version they were issued under.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from voice_agent.clock import utcnow
from voice_agent.storage import User

ROLES = ("supervisor", "admin")
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024  # hashing is deliberately slow: bound the work one request can ask for
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

_hasher = PasswordHasher()  # argon2-cffi defaults: Argon2id, RFC 9106 low-memory profile (64 MiB)
_dummy_hash: str | None = None


class UserError(ValueError):
    """A bad account request (unknown user, bad name, weak password); the message says which."""


@dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    role: str
    disabled: bool
    session_version: int
    created_at: datetime | None
    last_login_at: datetime | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _info(user: User) -> UserInfo:
    return UserInfo(
        id=user.id,
        username=user.username,
        role=user.role,
        disabled=bool(user.disabled),
        session_version=user.session_version or 1,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(f"password too short: at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise UserError(f"password too long: at most {MAX_PASSWORD_CHARS} characters")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password[:MAX_PASSWORD_CHARS])
    except (VerificationError, InvalidHashError):
        return False


class UserStore:
    """Account management; synchronous (routes call it through ``asyncio.to_thread``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)

    # -- reading ---------------------------------------------------------------------------
    def list_users(self) -> list[UserInfo]:
        with self._session() as s:
            return [_info(u) for u in s.scalars(select(User).order_by(User.username)).all()]

    def get(self, user_id: int) -> UserInfo | None:
        with self._session() as s:
            user = s.get(User, user_id)
            return None if user is None else _info(user)

    def by_name(self, username: str) -> UserInfo | None:
        with self._session() as s:
            user = s.scalars(select(User).where(User.username == username)).first()
            return None if user is None else _info(user)

    # -- changing --------------------------------------------------------------------------
    def add(self, username: str, password: str, role: str) -> UserInfo:
        if not USERNAME.match(username or ""):
            raise UserError(
                "bad username: 1-64 characters, letters, digits and . _ @ - "
                "(starting with a letter or digit)"
            )
        if role not in ROLES:
            raise UserError(f"bad role {role!r}: one of {', '.join(ROLES)}")
        check_password_rules(password)
        with self._session.begin() as s:
            if s.scalars(select(User).where(User.username == username)).first() is not None:
                raise UserError(f"user {username!r} already exists")
            user = User(
                username=username,
                password_hash=hash_password(password),
                role=role,
                disabled=False,
                session_version=1,
            )
            s.add(user)
            s.flush()
            return _info(user)

    def _change(self, username: str, change) -> UserInfo:
        with self._session.begin() as s:
            user = s.scalars(select(User).where(User.username == username)).first()
            if user is None:
                raise UserError(f"no user {username!r}")
            change(user)
            return _info(user)

    def set_password(self, username: str, password: str) -> UserInfo:
        check_password_rules(password)
        new_hash = hash_password(password)

        def change(user: User) -> None:
            user.password_hash = new_hash
            user.session_version = (user.session_version or 1) + 1

        return self._change(username, change)

    def set_disabled(self, username: str, disabled: bool) -> UserInfo:
        def change(user: User) -> None:
            user.disabled = disabled
            user.session_version = (user.session_version or 1) + 1

        return self._change(username, change)

    def end_sessions(self, user_id: int) -> None:
        """Every session of this user stops working (logout ends them all)."""
        with self._session.begin() as s:
            user = s.get(User, user_id)
            if user is not None:
                user.session_version = (user.session_version or 1) + 1

    def remove(self, username: str) -> None:
        with self._session.begin() as s:
            user = s.scalars(select(User).where(User.username == username)).first()
            if user is None:
                raise UserError(f"no user {username!r}")
            s.delete(user)

    def active_admins(self) -> int:
        return sum(1 for u in self.list_users() if u.is_admin and not u.disabled)

    # -- logging in ------------------------------------------------------------------------
    def authenticate(self, username: str, password: str) -> UserInfo | None:
        """The user if the password matches and the account is enabled, else None.

        An unknown user costs the same Argon2 verification as a known one, so response time
        does not tell which usernames exist.
        """
        global _dummy_hash
        with self._session.begin() as s:
            user = s.scalars(select(User).where(User.username == username)).first()
            if user is None:
                if _dummy_hash is None:
                    _dummy_hash = hash_password("not a real password, only burns time")
                _verify(_dummy_hash, password)
                return None
            if not _verify(user.password_hash, password) or user.disabled:
                return None
            if _hasher.check_needs_rehash(user.password_hash):
                user.password_hash = hash_password(password)
            user.last_login_at = utcnow()
            return _info(user)
