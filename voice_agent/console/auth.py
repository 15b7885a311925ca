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
import threading
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
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        # written aside, then linked into place: two servers starting at once on one data
        # folder both end up with the key that landed first, never a half-written file
        key = secrets.token_urlsafe(48)
        aside = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        try:
            os.link(aside, path)
            return key.encode()
        except FileExistsError:
            pass
        finally:
            aside.unlink(missing_ok=True)
    key = path.read_text().strip()
    if len(key) < 32:
        raise ValueError(f"{path} is damaged (too short); delete it to make a new one")
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
            data, signed = self._sessions.loads(  # max_age is compared, so seconds may be a float
                cookie,
                max_age=self.idle_secs,  # type: ignore[arg-type]
                return_timestamp=True,
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


def is_loopback(host: str | None) -> bool:
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
    return not (is_loopback(request.url.hostname) and is_loopback(client))


def client_ip(request: Request) -> str:
    """The peer address (forwarded-for headers are not trusted: they are the attacker's to set)."""
    return request.client.host if request.client else "unknown"


class LoginThrottle:
    """Slows down password guessing, per (client address, username) and per client address.

    Keys are never a username alone: guesses from one address must not lock the real user out
    from another. The per-address key catches password spraying (one password, many users).

    Every login attempt is reserved with :meth:`reserve` before its password is checked: the
    reservation counts as a failure at once (no ``await`` between the check and the count, so
    concurrent guesses cannot all slip past), and :meth:`succeeded` takes it back when the
    password was right. After ``max_failures`` failures for a key, each further attempt must wait
    ``base_delay * 2**(failures - max_failures)`` seconds (capped at ``max_delay``) after the
    last one; earlier attempts are refused (HTTP 429 with ``Retry-After``) without checking the
    password, and without counting. A key is forgotten ``window`` seconds after its last failure.
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
        self._lock = threading.Lock()  # the event loop is one thread; this covers any other

    def _current(self, key: str, now: float) -> tuple[int, float]:
        count, last = self._failures.get(key, (0, 0.0))
        if count and now - last > self.window:
            self._failures.pop(key, None)
            return 0, 0.0
        return count, last

    def _wait(self, keys: Iterable[str], now: float) -> float:
        wait = 0.0
        for key in keys:
            count, last = self._current(key, now)
            if count >= self.max_failures:
                delay = min(self.max_delay, self.base_delay * 2 ** (count - self.max_failures))
                wait = max(wait, last + delay - now)
        return max(0.0, wait)

    def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds to wait before the next attempt may be checked (0: go ahead)."""
        with self._lock:
            return self._wait(keys, self._clock())

    def reserve(self, keys: Iterable[str]) -> float:
        """Claim one attempt: 0 if it may go ahead (it now counts as a failure), else the
        seconds to wait (nothing counted)."""
        keys = tuple(keys)
        with self._lock:
            now = self._clock()
            wait = self._wait(keys, now)
            if wait > 0:
                return wait
            for key in keys:
                count, _ = self._current(key, now)
                self._failures[key] = (count + 1, now)
            if len(self._failures) > self.max_keys:
                self._prune(now)
            return 0.0

    def succeeded(self, clear: Iterable[str], refund: Iterable[str] = ()) -> None:
        """A reserved attempt had the right password: forget the ``clear`` keys, and take the
        reservation back from the ``refund`` keys (their other failures still count)."""
        with self._lock:
            for key in clear:
                self._failures.pop(key, None)
            for key in refund:
                count, last = self._failures.get(key, (0, 0.0))
                if count > 1:
                    self._failures[key] = (count - 1, last)
                else:
                    self._failures.pop(key, None)

    def _prune(self, now: float) -> None:
        for key, (_, last) in list(self._failures.items()):
            if now - last > self.window:
                del self._failures[key]
        while len(self._failures) > self.max_keys:  # still too many: drop the oldest
            oldest = min(self._failures, key=lambda k: self._failures[k][1])
            del self._failures[oldest]


def address_key(ip: str) -> str:
    """The client address as a throttle key: an IPv6 client counts as its /64 (one host
    usually holds a whole /64), an IPv4-mapped IPv6 address as the IPv4 address."""
    try:
        address = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def throttle_keys(username: str, ip: str) -> tuple[str, str]:
    """(the address and username together, the address alone): never the username alone."""
    address = address_key(ip)
    return f"login:{address}|{username.strip().lower()}", f"address:{address}"
