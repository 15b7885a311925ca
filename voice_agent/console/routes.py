"""The console's pages (Jinja2, server-rendered) and JSON APIs under ``/console``.

Every route except the login form and the static files needs a signed-in user; user management
and the settings view need an admin. Pages answer an anonymous request with a redirect to the
login form, APIs with 401. Every POST checks the session's CSRF token. Responses are never cached
and may not be framed; the content security policy allows only this server's own scripts.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import SecretStr

from voice_agent.console.auth import (
    CSRF_FIELD,
    CSRF_HEADER,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    LoginThrottle,
    Session,
    SessionCodec,
    client_ip,
    cookie_secure,
    load_secret_key,
    throttle_keys,
)
from voice_agent.console.charts import waterfall_svg
from voice_agent.console.masking import mask_url
from voice_agent.console.queries import (
    OUTCOMES,
    SORTS,
    CallFilter,
    ConsoleQueries,
    QueryError,
    to_csv,
    to_json,
)
from voice_agent.console.users import ROLES, UserError, UserInfo, UserStore
from voice_agent.settings import Settings

PREFIX = "/console"
API_PREFIX = f"{PREFIX}/api"
DEMO_PAGE = "/"  # the browser demo, for signed-in users unless demo_public
SESSION_COOKIE_PATH = "/"  # the console and the browser demo share the sign-in
CALL_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
        "base-uri 'none'; object-src 'none'"
    ),
}
SECRET_NAMES = ("secret", "token", "password", "api_key", "auth")


class ConsoleRoute(APIRoute):
    """Adds the security headers and the refreshed session cookie to every console response."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except HTTPException as e:
                e.headers = {**SECURITY_HEADERS, **(e.headers or {})}
                raise
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            refresh = getattr(request.state, "console_cookie", None)
            if refresh is not None:
                _set_session_cookie(response, refresh[0], secure=refresh[1], max_age=refresh[2])
            return response

        return console_handler


def _set_session_cookie(response: Response, value: str, *, secure: bool, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=max_age,
        path=SESSION_COOKIE_PATH,
        httponly=True,
        secure=secure,
        samesite="strict",
    )


def _when(value: str | None, with_seconds: bool = True) -> str:
    if not value:
        return "—"
    moment = datetime.fromisoformat(value)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M") + " UTC"


def _clock(secs: float | None) -> str:
    if secs is None:
        return "—"
    secs = max(0, int(round(secs)))
    hours, rest = divmod(secs, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _secs(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f} s"


def _dash(value: Any) -> Any:
    return "—" if value in (None, "") else value


def _templates() -> Environment:
    env = Environment(
        loader=PackageLoader("voice_agent.console", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, clock=_clock, secs=_secs, dash=_dash)
    env.globals["waterfall_svg"] = waterfall_svg
    return env


def _static(name: str) -> bytes | None:
    files = resources.files("voice_agent.console").joinpath("static")
    item = files.joinpath(name)
    return item.read_bytes() if item.is_file() else None


def masked_settings(settings: Settings) -> list[tuple[str, str, str]]:
    """(name, value, description) of every setting, secrets shown as ``••••••`` (whole
    values) or ``***`` (inside URLs)."""
    out = []
    for name, info in type(settings).model_fields.items():
        value = getattr(settings, name)
        if isinstance(value, SecretStr) or (
            any(word in name for word in SECRET_NAMES) and value not in (None, "")
        ):
            shown = "••••••" if value not in (None, "") else "—"
        elif isinstance(value, list):  # e.g. ice_servers: turn:user:password@host
            shown = ", ".join(mask_url(str(v)) for v in value) or "—"
        else:  # URLs (and anything shaped like one): userinfo passwords, secret parameters
            shown = "—" if value is None else mask_url(str(value))
        out.append((name, shown, info.description or ""))
    return out


class Console:
    """Per-server console state: settings, the session codec, the login throttle, templates."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.throttle = LoginThrottle()
        self.env = _templates()
        self._codec: SessionCodec | None = None

    @property
    def codec(self) -> SessionCodec:
        if self._codec is None:  # the key file is made on first use, not at import
            self._codec = SessionCodec(
                load_secret_key(self.settings),
                session_hours=self.settings.console_session_hours,
                idle_minutes=self.settings.console_idle_minutes,
            )
        return self._codec

    @staticmethod
    def engine(request: Request):
        store = getattr(request.app.state, "store", None)
        if store is None:
            raise HTTPException(503, "the call store is not open yet")
        return store.engine

    def users(self, request: Request) -> UserStore:
        return UserStore(self.engine(request))

    def queries(self, request: Request) -> ConsoleQueries:
        return ConsoleQueries(self.engine(request))

    def secure(self, request: Request) -> bool:
        return cookie_secure(request, self.settings.console_secure_cookies)

    def render(self, request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        session: Session | None = getattr(request.state, "console_session", None)
        ctx.setdefault("user", getattr(request.state, "console_user", None))
        ctx.setdefault("csrf_token", self.codec.csrf_token(session) if session else "")
        ctx.setdefault("csrf_field", CSRF_FIELD)
        ctx.setdefault("path", request.url.path)
        html = self.env.get_template(name).render(**ctx)
        return HTMLResponse(html, status_code=status)

    # -- dependencies ---------------------------------------------------------------------
    async def user(self, request: Request) -> UserInfo:
        """The signed-in user; otherwise a redirect to the login form (pages) or 401 (APIs)."""
        session = self.codec.read(request.cookies.get(SESSION_COOKIE))
        user = None
        if session is not None:
            user = await asyncio.to_thread(self.users(request).get, session.user_id)
        if (
            session is None
            or user is None
            or user.disabled
            or user.session_version != session.version
        ):
            if request.url.path.startswith(API_PREFIX):
                raise HTTPException(401, "sign in first")
            target = request.url.path if request.method == "GET" else f"{PREFIX}/calls"
            if request.url.query and request.method == "GET":
                target += "?" + request.url.query
            raise HTTPException(
                303, "sign in first", headers={"Location": f"{PREFIX}/login?next={quote(target)}"}
            )
        request.state.console_session = session
        request.state.console_user = user
        fresh = self.codec.refreshed(session)
        if fresh is not None:
            request.state.console_cookie = (fresh, self.secure(request), self._cookie_age())
        return user

    async def admin(self, request: Request) -> UserInfo:
        user = await self.user(request)
        if not user.is_admin:
            raise HTTPException(403, "admins only")
        return user

    async def csrf(self, request: Request) -> None:
        """Every state-changing request carries the session's CSRF token (form field or header)."""
        session: Session | None = getattr(request.state, "console_session", None)
        token = request.headers.get(CSRF_HEADER)
        if token is None and "form" in request.headers.get("content-type", ""):
            field = (await request.form()).get(CSRF_FIELD)
            token = field if isinstance(field, str) else None
        if session is None or not self.codec.check_csrf(session, token):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")

    def _cookie_age(self) -> int:
        return int(self.settings.console_session_hours * 3600)


def _safe_next(value: str | None) -> str:
    """Only a path inside the console or the demo page (no //host, no scheme) may be a
    post-login target."""
    inside = value in (PREFIX, DEMO_PAGE) or (value or "").startswith(PREFIX + "/")
    if value and inside and "\\" not in value:
        return value
    return f"{PREFIX}/calls"


def _back_to_list(request: Request) -> str:
    """Back to the filtered list the user came from (same server only), else the full list."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc == request.url.netloc and referer.path == f"{PREFIX}/calls":
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return f"{PREFIX}/calls"


def console_router(settings: Settings, console: Console | None = None) -> APIRouter:
    console = console or Console(settings)
    router = APIRouter(route_class=ConsoleRoute)
    signed_in = Depends(console.user)
    admin_only = Depends(console.admin)

    # -- public: login form and static files ------------------------------------------------
    def login_page(request: Request, *, error: str = "", status: int = 200, username: str = ""):
        nonce, token = console.codec.login_form()
        response = console.render(
            request,
            "login.html",
            status,
            csrf_token=token,
            error=error,
            username=username,
            next=_safe_next(request.query_params.get("next")),
            user=None,
        )
        response.set_cookie(
            LOGIN_COOKIE,
            nonce,
            max_age=3600,
            path=f"{PREFIX}/login",
            httponly=True,
            secure=console.secure(request),
            samesite="strict",
        )
        return response

    @router.get(f"{PREFIX}/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> Response:
        return login_page(request)

    @router.post(f"{PREFIX}/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        username = str(form.get("username") or "").strip()[:64]
        password = str(form.get("password") or "")
        if not console.codec.check_login_form(
            request.cookies.get(LOGIN_COOKIE), str(form.get(CSRF_FIELD) or "")
        ):
            return login_page(
                request, error="This form expired. Please try again.", status=403, username=username
            )
        pair, address = throttle_keys(username, client_ip(request))
        # reserve the attempt (counted as a failure) before the password is checked, with no
        # await in between: concurrent guesses cannot all get past the count to Argon2
        wait = console.throttle.reserve((pair, address))
        if wait > 0:
            seconds = int(wait) + 1
            response = login_page(
                request,
                error=f"Too many failed sign-ins. Try again in {seconds} s.",
                status=429,
                username=username,
            )
            response.headers["Retry-After"] = str(seconds)
            return response
        user = await asyncio.to_thread(console.users(request).authenticate, username, password)
        if user is None:  # the reservation stands as the failure
            return login_page(
                request, error="Wrong username or password.", status=401, username=username
            )
        console.throttle.succeeded(clear=(pair,), refund=(address,))
        response = RedirectResponse(_safe_next(str(form.get("next") or "")), status_code=303)
        _set_session_cookie(
            response,
            console.codec.issue(user),
            secure=console.secure(request),
            max_age=console._cookie_age(),
        )
        response.delete_cookie(LOGIN_COOKIE, path=f"{PREFIX}/login")
        return response

    @router.get(PREFIX + "/static/{name}")
    async def static(name: str) -> Response:
        suffix = Path(name).suffix
        body = _static(name) if re.fullmatch(r"[a-z0-9_-]+\.[a-z]+", name) else None
        if body is None or suffix not in STATIC_TYPES:
            raise HTTPException(404, "no such file")
        return Response(
            body, media_type=STATIC_TYPES[suffix], headers={"Cache-Control": "max-age=3600"}
        )

    # -- signed in ------------------------------------------------------------------------------
    @router.post(f"{PREFIX}/logout", dependencies=[signed_in, Depends(console.csrf)])
    async def logout(request: Request) -> Response:
        user: UserInfo = request.state.console_user
        await asyncio.to_thread(console.users(request).end_sessions, user.id)
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=SESSION_COOKIE_PATH)
        request.state.console_cookie = None
        return response

    @router.get(PREFIX, dependencies=[signed_in])
    async def home() -> Response:
        return RedirectResponse(f"{PREFIX}/calls", status_code=303)

    def _filter(request: Request) -> CallFilter:
        try:
            return CallFilter.parse(request.query_params)
        except QueryError as e:
            raise HTTPException(400, f"bad filter: {e}") from e

    @router.get(f"{PREFIX}/calls", response_class=HTMLResponse, dependencies=[signed_in])
    async def calls_page(request: Request) -> Response:
        error = ""
        try:
            f = CallFilter.parse(request.query_params)
        except QueryError as e:
            f, error = CallFilter(), f"Bad filter: {e}"
        queries = console.queries(request)
        page = await asyncio.to_thread(queries.list_calls, f)
        options = await asyncio.to_thread(queries.filter_options)
        return console.render(
            request,
            "calls.html",
            400 if error else 200,
            page=page,
            f=f,
            error=error,
            options=options,
            outcomes=OUTCOMES,
            sorts=SORTS,
            export_query=urlencode(f.params(page=1)),
        )

    @router.get(PREFIX + "/calls/{call_id}", response_class=HTMLResponse, dependencies=[signed_in])
    async def call_page(request: Request, call_id: str) -> Response:
        detail = await _detail(request, call_id)
        return console.render(
            request,
            "call.html",
            call=detail,
            has_audio=_recording(call_id).is_file(),
            back=_back_to_list(request),
        )

    def _recording(call_id: str) -> Path:
        return Path(settings.data_dir) / "recordings" / f"{call_id}.wav"

    async def _detail(request: Request, call_id: str) -> dict[str, Any]:
        if not CALL_ID.match(call_id):
            raise HTTPException(404, "no such call")
        detail = await asyncio.to_thread(console.queries(request).call_detail, call_id)
        if detail is None:
            raise HTTPException(404, "no such call")
        return detail

    @router.get(PREFIX + "/calls/{call_id}/audio", dependencies=[signed_in])
    async def call_audio(request: Request, call_id: str) -> Response:
        await _detail(request, call_id)  # a known call, and a safe file name
        path = _recording(call_id)
        if not path.is_file():
            raise HTTPException(404, "this call was not recorded")
        return FileResponse(path, media_type="audio/wav")

    @router.get(f"{PREFIX}/live", response_class=HTMLResponse, dependencies=[signed_in])
    async def live_page(request: Request) -> Response:
        return console.render(request, "live.html")

    # -- JSON APIs ------------------------------------------------------------------------------
    @router.get(f"{API_PREFIX}/calls", dependencies=[signed_in])
    async def api_calls(request: Request) -> dict[str, Any]:
        f = _filter(request)
        page = await asyncio.to_thread(console.queries(request).list_calls, f)
        return {
            "total": page.total,
            "page": f.page,
            "per_page": f.per_page,
            "pages": page.pages,
            "calls": page.rows,
        }

    @router.get(API_PREFIX + "/calls/{call_id}", dependencies=[signed_in])
    async def api_call(request: Request, call_id: str) -> dict[str, Any]:
        return await _detail(request, call_id)

    @router.get(f"{API_PREFIX}/export", dependencies=[signed_in])
    async def api_export(request: Request) -> Response:
        kind = request.query_params.get("format", "csv")
        if kind not in ("csv", "json"):
            raise HTTPException(400, "format: csv or json")
        f = _filter(request)
        rows = await asyncio.to_thread(console.queries(request).export_rows, f)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        headers = {"Content-Disposition": f'attachment; filename="calls-{stamp}.{kind}"'}
        if kind == "csv":
            return Response(to_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)
        return Response(to_json(rows, f), media_type="application/json", headers=headers)

    @router.get(f"{API_PREFIX}/live", dependencies=[signed_in])
    async def api_live(request: Request) -> dict[str, Any]:
        calls = await asyncio.to_thread(console.queries(request).live_calls)
        return {"now": datetime.now(UTC).isoformat(), "calls": calls}

    @router.get(f"{API_PREFIX}/me", dependencies=[signed_in])
    async def api_me(request: Request) -> dict[str, Any]:
        user: UserInfo = request.state.console_user
        return {
            "username": user.username,
            "role": user.role,
            "csrf_token": console.codec.csrf_token(request.state.console_session),
        }

    # -- admin: users and settings ---------------------------------------------------------------
    async def users_page(
        request: Request, *, error: str = "", done: str = "", status: int = 200
    ) -> Response:
        users = await asyncio.to_thread(console.users(request).list_users)
        return console.render(
            request, "users.html", status, users=users, roles=ROLES, error=error, done=done
        )

    @router.get(f"{PREFIX}/users", response_class=HTMLResponse, dependencies=[admin_only])
    async def users_list(request: Request) -> Response:
        return await users_page(request, done=request.query_params.get("done", "")[:200])

    def _done(message: str) -> Response:
        return RedirectResponse(f"{PREFIX}/users?" + urlencode({"done": message}), status_code=303)

    @router.post(f"{PREFIX}/users", dependencies=[admin_only, Depends(console.csrf)])
    async def users_add(request: Request) -> Response:
        form = await request.form()
        username = str(form.get("username") or "").strip()
        try:
            await asyncio.to_thread(
                console.users(request).add,
                username,
                str(form.get("password") or ""),
                str(form.get("role") or ""),
            )
        except UserError as e:
            return await users_page(request, error=str(e), status=400)
        return _done(f"Added {username}.")

    @router.post(
        PREFIX + "/users/{username}/password", dependencies=[admin_only, Depends(console.csrf)]
    )
    async def users_password(request: Request, username: str) -> Response:
        form = await request.form()
        try:
            await asyncio.to_thread(
                console.users(request).set_password, username, str(form.get("password") or "")
            )
        except UserError as e:
            return await users_page(request, error=str(e), status=400)
        return _done(f"New password set for {username}; their sessions have ended.")

    async def _set_disabled(request: Request, username: str, disabled: bool) -> Response:
        users = console.users(request)
        me: UserInfo = request.state.console_user
        target = await asyncio.to_thread(users.by_name, username)
        if target is None:
            return await users_page(request, error=f"no user {username!r}", status=404)
        if disabled and target.id == me.id:
            return await users_page(request, error="You cannot disable yourself.", status=400)
        await asyncio.to_thread(users.set_disabled, username, disabled)
        return _done(f"{'Disabled' if disabled else 'Enabled'} {username}.")

    @router.post(
        PREFIX + "/users/{username}/disable", dependencies=[admin_only, Depends(console.csrf)]
    )
    async def users_disable(request: Request, username: str) -> Response:
        return await _set_disabled(request, username, True)

    @router.post(
        PREFIX + "/users/{username}/enable", dependencies=[admin_only, Depends(console.csrf)]
    )
    async def users_enable(request: Request, username: str) -> Response:
        return await _set_disabled(request, username, False)

    @router.get(f"{PREFIX}/settings", response_class=HTMLResponse, dependencies=[admin_only])
    async def settings_page(request: Request) -> Response:
        return console.render(request, "settings.html", rows=masked_settings(settings))

    return router
