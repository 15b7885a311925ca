"""Console sessions, CSRF tokens and login throttling.

Sessions are stateless signed cookies (itsdangerous, HMAC-SHA1 over the server's secret key)
carrying the user id, the user's ``session_version`` when the session began, the time it began
and a random session id. A session ends when it has been idle too long (the signature's
timestamp, refreshed as the user works), when it is too old (``console_session_hours``), or when
the user's ``session_version`` moves on (password change, disabled account, logout).

CSRF: each session has a token derived from its session id (HMAC with the secret key), required
on every POST form (``csrf_token`` field) and every state-changing API call (``X-CSRF-Token``
header). The login form, which has no session yet, gets a token bound to a short-lived nonce
cookie instead. The cookie is also ``SameSite=Strict``; the token is the second lock.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from voice_agent.console.users import UserInfo
from voice_agent.settings import Settings

SESSION_COOKIE = "va_console"
LOGIN_COOKIE = "va_console_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SECRET_FILE = "console_secret.key"
REFRESH_SECS = 60  # re-sign the cookie (pushing back its idle expiry) at most once a minute
LOGIN_FORM_SECS = 3600  # how long a login form stays usable


def load_secret_key(settings: Settings) -> bytes:
    """The configured secret, or one generated once and kept in ``data_dir`` (mode 0600)."""
    if settings.console_secret_key is not None:
        value = settings.console_secret_key.get_secret_value()
        if len(value) < 16:
            raise ValueError("console_secret_key is too short: use at least 16 characters")
        return value.encode()
    path = Path(settings.data_dir) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if len(key) < 32:
            raise ValueError(
                f"{path} is damaged (too short); delete it to make a new one"
            ) from None
        return key.encode()
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key.encode()


@dataclass(frozen=True)
class Session:
    user_id: int
    version: int
    issued_at: float  # when the user logged in (absolute expiry counts from here)
    sid: str  # random; the CSRF token is derived from it
    signed_at: float  # when the cookie was last signed (idle expiry counts from here)


class SessionCodec:
    """Issues, reads and refreshes session cookies; makes and checks CSRF tokens."""

    def __init__(
        self,
        secret: bytes,
        *,
        session_hours: float,
        idle_minutes: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._sessions = URLSafeTimedSerializer(secret, salt="console-session")
        self._login = URLSafeTimedSerializer(secret, salt="console-login-form")
        self.absolute_secs = session_hours * 3600
        self.idle_secs = idle_minutes * 60
        self._clock = clock

    def issue(self, user: UserInfo) -> str:
        now = self._clock()
        return self._sign(
            Session(user.id, user.session_version, now, secrets.token_urlsafe(18), now)
        )

    def _sign(self, s: Session) -> str:
        return self._sessions.dumps({"u": s.user_id, "v": s.version, "i": s.issued_at, "s": s.sid})

    def read(self, cookie: str | None) -> Session | None:
        """The session in a cookie, or None if it is forged, damaged or expired."""
        if not cookie:
            return None
        try:
            data, signed = self._sessions.loads(
                cookie, max_age=self.idle_secs, return_timestamp=True
            )
        except (BadSignature, SignatureExpired):
            return None
        try:
            session = Session(
                int(data["u"]), int(data["v"]), float(data["i"]), str(data["s"]), signed.timestamp()
            )
        except (KeyError, TypeError, ValueError):
            return None
        if self._clock() - session.issued_at > self.absolute_secs:
            return None
        return session

    def refreshed(self, session: Session) -> str | None:
        """A re-signed cookie (same session, idle clock reset), when the old one is a minute old."""
        if self._clock() - session.signed_at < REFRESH_SECS:
            return None
        return self._sign(session)

    # -- CSRF ------------------------------------------------------------------------------
    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._secret, b"csrf:" + session.sid.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), str(token))

    def login_form(self) -> tuple[str, str]:
        """(nonce cookie value, form token) for a login form."""
        nonce = secrets.token_urlsafe(18)
        return self._login.dumps(nonce), self._login_token(nonce)

    def _login_token(self, nonce: str) -> str:
        return hmac.new(self._secret, b"login:" + nonce.encode(), hashlib.sha256).hexdigest()

    def check_login_form(self, cookie: str | None, token: str | None) -> bool:
        if not cookie or not token:
            return False
        try:
            nonce = self._login.loads(cookie, max_age=LOGIN_FORM_SECS)
        except (BadSignature, SignatureExpired):
            return False
        return hmac.compare_digest(self._login_token(str(nonce)), str(token))


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cookie_secure(request: Request, policy: str) -> bool:
    """Whether cookies get the Secure flag: always, except (``auto``) plain http to loopback.

    A browser does not send a Secure cookie over plain http, so the console only works over
    https, unless both the address typed and the client are this machine.
    """
    if policy == "always":
        return True
    if policy == "never":
        return False
    if request.url.scheme == "https":
        return True
    client = request.client.host if request.client else None
    return not (_is_loopback(request.url.hostname) and _is_loopback(client))


def client_ip(request: Request) -> str:
    """The peer address (forwarded-for headers are not trusted: they are the attacker's to set)."""
    return request.client.host if request.client else "unknown"


class LoginThrottle:
    """Slows down password guessing, per username and per client address.

    After ``max_failures`` failed logins for a key, each further attempt must wait
    ``base_delay * 2**(failures - max_failures)`` seconds (capped at ``max_delay``) after the
    last failure; earlier attempts are refused (HTTP 429 with ``Retry-After``) without checking
    the password. A key is forgotten ``window`` seconds after its last failure, or on success.
    """

    def __init__(
        self,
        *,
        max_failures: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        window: float = 900.0,
        max_keys: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (count, last failure)

    def _current(self, key: str) -> tuple[int, float]:
        count, last = self._failures.get(key, (0, 0.0))
        if count and self._clock() - last > self.window:
            self._failures.pop(key, None)
            return 0, 0.0
        return count, last

    def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds to wait before the next attempt may be checked (0: go ahead)."""
        wait = 0.0
        now = self._clock()
        for key in keys:
            count, last = self._current(key)
            if count >= self.max_failures:
                delay = min(self.max_delay, self.base_delay * 2 ** (count - self.max_failures))
                wait = max(wait, last + delay - now)
        return max(0.0, wait)

    def failed(self, keys: Iterable[str]) -> None:
        now = self._clock()
        for key in keys:
            count, _ = self._current(key)
            self._failures[key] = (count + 1, now)
        if len(self._failures) > self.max_keys:
            self._prune(now)

    def succeeded(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._failures.pop(key, None)

    def _prune(self, now: float) -> None:
        for key, (_, last) in list(self._failures.items()):
            if now - last > self.window:
                del self._failures[key]
        while len(self._failures) > self.max_keys:  # still too many: drop the oldest
            oldest = min(self._failures, key=lambda k: self._failures[k][1])
            del self._failures[oldest]


def throttle_keys(username: str, ip: str) -> tuple[str, str]:
    return f"user:{username.strip().lower()}", f"ip:{ip}"
