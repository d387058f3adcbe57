"""An MCP server behind OAuth 2.1, with a small authorization server of its own, for the tests.

Run it as ``python tests/servers/auth_server.py`` (on the port in ``PORT``, else an
ephemeral one; printed as ``PORT <n>``). One process on 127.0.0.1 plays both parts:

- the **resource server** (built from the SDK's own server-side pieces: bearer-token
  backend, ``RequireAuthMiddleware``, protected resource metadata): Streamable HTTP at
  ``/mcp`` and SSE at ``/sse``, both requiring a token with scope ``mcp``; its 401s
  carry ``WWW-Authenticate: Bearer ... resource_metadata=...``. Tools: ``echo(text)``
  and ``whoami()`` (the client ID and subject of the caller's token);
- the **authorization server** (written here, small and strict; its endpoints are under
  ``/oauth/``, so a client that guesses ``/token`` instead of reading the metadata
  fails): RFC 8414 metadata, dynamic registration, ``/oauth/authorize`` (no login page:
  it approves at once as the ``login_hint``, else the configured subject, or answers
  ``access_denied``),
  ``/oauth/token`` for the ``authorization_code`` (PKCE S256 checked), ``refresh_token``
  (rotated), ``client_credentials`` and jwt-bearer (RFC 7523 §2.1: a workload's JWT
  as the grant, verified against ``AUTH_JWT_PUBLIC_KEY``) grants, with ``client_secret_basic``,
  ``client_secret_post``, ``private_key_jwt`` (verified against ``AUTH_JWT_PUBLIC_KEY``)
  or no client authentication (public clients).

Pre-registered clients: :data:`MACHINE_ID` / :data:`MACHINE_SECRET` (client
credentials), :data:`JWT_MACHINE_ID` (client credentials with ``private_key_jwt``) and
:data:`APP_ID` (a public client for the authorization code flow, any loopback redirect)
and :data:`WORKLOAD_ID` (a public client for the jwt-bearer grant).

Test hooks: ``GET /admin/stats`` counts what happened (authorizations, grants,
registrations, MCP requests per client); ``POST /admin/config`` takes JSON
``{"lifetime": s, "reported_lifetime": s or null, "deny": bool, "subject": str}``;
``POST /admin/revoke`` makes every access token invalid (refresh tokens stay valid);
``POST /admin/reset`` restores the default configuration and zeroes the counters
(clients and tokens stay); ``GET /admin/secrets`` lists every token, code, PKCE value,
state and client secret it handed out or received.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import socket
import sys
import time
import warnings
from collections import Counter
from typing import Any
from urllib.parse import urlencode, urlsplit

#: Pre-registered confidential client for the client credentials grant.
MACHINE_ID = "machine"
MACHINE_SECRET = "machine-secret-b7f1e0c4"  # a test credential
#: Pre-registered client for client credentials with private_key_jwt.
JWT_MACHINE_ID = "jwt-machine"
#: Pre-registered public client for the authorization code flow.
APP_ID = "app"
#: Pre-registered public client for the jwt-bearer grant (workload identity).
WORKLOAD_ID = "workload"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "mcp"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Store:
    """Everything the authorization server knows, in memory."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self.clients: dict[str, dict[str, Any]] = {
            MACHINE_ID: {"secret": MACHINE_SECRET, "grants": ["client_credentials"], "redirects": None},
            JWT_MACHINE_ID: {
                "secret": None,
                "jwt": True,
                "grants": ["client_credentials"],
                "redirects": None,
            },
            APP_ID: {
                "secret": None,
                "grants": ["authorization_code", "refresh_token"],
                "redirects": "loopback",
            },
            WORKLOAD_ID: {"secret": None, "grants": [JWT_BEARER], "redirects": None},
        }
        self.codes: dict[str, dict[str, Any]] = {}
        self.access: dict[str, dict[str, Any]] = {}
        self.refresh: dict[str, dict[str, Any]] = {}
        self.lifetime = 3600
        #: The ``expires_in`` told to clients, if not the real lifetime (0: "refresh at once").
        self.reported_lifetime: int | None = None
        self.deny = False
        self.subject = "alice"
        self.stats: Counter[str] = Counter()
        #: Every secret handed out or received (for the tests' secrets sweep).
        self.secrets: set[str] = set()
        self.mcp_requests: Counter[str] = Counter()

    def issue(self, client_id: str, scope: str, subject: str | None, *, refresh: bool) -> dict[str, Any]:
        token = secrets.token_urlsafe(24)
        self.secrets.add(token)
        self.access[token] = {
            "client_id": client_id,
            "scope": scope,
            "subject": subject,
            "expires_at": time.time() + self.lifetime,
        }
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.lifetime if self.reported_lifetime is None else self.reported_lifetime,
            "scope": scope,
        }
        if refresh:
            refresh_token = secrets.token_urlsafe(24)
            self.secrets.add(refresh_token)
            self.refresh[refresh_token] = {"client_id": client_id, "scope": scope, "subject": subject}
            body["refresh_token"] = refresh_token
        return body


def build_app(port: int) -> Any:
    import jwt
    from mcp.server.auth.middleware.auth_context import get_access_token
    from mcp.server.auth.provider import AccessToken
    from mcp.server.auth.settings import AuthSettings
    from mcp.server.mcpserver import MCPServer
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, RedirectResponse, Response
    from starlette.routing import Route

    issuer = f"http://127.0.0.1:{port}"
    store = Store(issuer)
    public_key = os.environ.get("AUTH_JWT_PUBLIC_KEY")

    class Verifier:
        async def verify_token(self, token: str) -> AccessToken | None:
            grant = store.access.get(token)
            if grant is None or grant["expires_at"] < time.time():
                return None
            store.mcp_requests[grant["client_id"]] += 1
            return AccessToken(
                token=token,
                client_id=grant["client_id"],
                scopes=grant["scope"].split(),
                expires_at=int(grant["expires_at"]),
                subject=grant["subject"],
            )

    server = MCPServer(
        "auth-test",
        auth=AuthSettings(
            issuer_url=issuer,  # type: ignore[arg-type]
            resource_server_url=issuer,  # type: ignore[arg-type]
            required_scopes=[SCOPE],
            validate_token_resource=False,
        ),
        token_verifier=Verifier(),
    )

    @server.tool()
    def echo(text: str) -> str:
        return text

    @server.tool()
    def whoami() -> str:
        token = get_access_token()
        return f"{token.client_id} {token.subject}" if token else "nobody"

    def oauth_error(error: str, status: int = 400) -> Response:
        return JSONResponse({"error": error}, status_code=status)

    async def metadata(request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/oauth/authorize",
                "token_endpoint": f"{issuer}/oauth/token",
                "registration_endpoint": f"{issuer}/oauth/register",
                "response_types_supported": ["code"],
                "grant_types_supported": [
                    "authorization_code",
                    "refresh_token",
                    "client_credentials",
                    JWT_BEARER,
                ],
                "token_endpoint_auth_methods_supported": [
                    "none",
                    "client_secret_basic",
                    "client_secret_post",
                    "private_key_jwt",
                ],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": [SCOPE, "offline_access"],
                "authorization_response_iss_parameter_supported": True,
            }
        )

    async def register(request: Request) -> Response:
        body = await request.json()
        store.stats["register"] += 1
        client_id = f"dyn-{store.stats['register']}"
        method = body.get("token_endpoint_auth_method") or "client_secret_basic"
        secret = (
            secrets.token_urlsafe(16) if method in ("client_secret_basic", "client_secret_post") else None
        )
        redirects = list(body.get("redirect_uris") or [])
        store.clients[client_id] = {
            "secret": secret,
            "grants": body.get("grant_types") or ["authorization_code", "refresh_token"],
            "redirects": redirects,
        }
        info = {**body, "client_id": client_id, "token_endpoint_auth_method": method}
        if secret is not None:
            info["client_secret"] = secret
            store.secrets.add(secret)
        return JSONResponse(info, status_code=201)

    def redirect_allowed(client: dict[str, Any], redirect_uri: str) -> bool:
        if client["redirects"] == "loopback":
            parts = urlsplit(redirect_uri)
            return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")
        return redirect_uri in (client["redirects"] or [])

    async def authorize(request: Request) -> Response:
        query = request.query_params
        client = store.clients.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if client is None or not redirect_allowed(client, redirect_uri):
            return Response("unknown client or redirect_uri", status_code=400)
        store.stats["authorize"] += 1
        answer: dict[str, str] = {"iss": issuer}
        if query.get("state"):
            answer["state"] = query["state"]
        if store.deny:
            answer["error"] = "access_denied"
        elif query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            answer["error"] = "invalid_request"
        else:
            code = secrets.token_urlsafe(16)
            store.secrets.update((code, query["code_challenge"], query.get("state", "")))
            store.codes[code] = {
                "client_id": query["client_id"],
                "redirect_uri": redirect_uri,
                "challenge": query["code_challenge"],
                "scope": query.get("scope") or SCOPE,
                "subject": query.get("login_hint") or store.subject,
            }
            answer["code"] = code
        return RedirectResponse(f"{redirect_uri}?{urlencode(answer)}", status_code=302)

    def authenticate(request: Request, form: Any) -> str | None:
        """The client ID the token request proves, or None."""
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret")
        assertion = form.get("client_assertion")
        if assertion:
            try:
                claims = jwt.decode(
                    assertion, public_key, algorithms=["ES256", "RS256"], audience=[issuer, f"{issuer}/"]
                )
            except jwt.PyJWTError:
                return None
            client_id = claims.get("sub", "")
            client = store.clients.get(client_id)
            return client_id if client is not None and client.get("jwt") else None
        client = store.clients.get(client_id)
        if client is None or client.get("jwt"):
            return None
        if client["secret"] is None:
            return client_id  # a public client
        return client_id if secret is not None and secrets.compare_digest(secret, client["secret"]) else None

    async def token(request: Request) -> Response:
        form = await request.form()
        grant = str(form.get("grant_type", ""))
        store.stats[f"grant:{grant}"] += 1
        client_id = authenticate(request, form)
        if client_id is None:
            return oauth_error("invalid_client", 401)
        if grant not in store.clients[client_id]["grants"]:
            return oauth_error("unauthorized_client")
        if grant == "authorization_code":
            code = store.codes.pop(str(form.get("code", "")), None)
            verifier = str(form.get("code_verifier", ""))
            store.secrets.add(verifier)
            if (
                code is None
                or code["client_id"] != client_id
                or code["redirect_uri"] != form.get("redirect_uri")
                or _b64(hashlib.sha256(verifier.encode()).digest()) != code["challenge"]
            ):
                return oauth_error("invalid_grant")
            return JSONResponse(store.issue(client_id, code["scope"], code["subject"], refresh=True))
        if grant == "refresh_token":
            old = store.refresh.pop(str(form.get("refresh_token", "")), None)
            if old is None or old["client_id"] != client_id:
                return oauth_error("invalid_grant")
            return JSONResponse(store.issue(client_id, old["scope"], old["subject"], refresh=True))
        if grant == "client_credentials":
            return JSONResponse(store.issue(client_id, str(form.get("scope") or SCOPE), None, refresh=False))
        if grant == JWT_BEARER:
            assertion = str(form.get("assertion", ""))
            store.secrets.add(assertion)
            try:
                claims = jwt.decode(
                    assertion, public_key, algorithms=["ES256"], audience=[issuer, f"{issuer}/"]
                )
            except jwt.PyJWTError:
                return oauth_error("invalid_grant")
            return JSONResponse(store.issue(client_id, SCOPE, claims.get("sub"), refresh=False))
        return oauth_error("unsupported_grant_type")

    async def stats(request: Request) -> Response:
        return JSONResponse({**store.stats, "mcp_requests": dict(store.mcp_requests)})

    async def configure(request: Request) -> Response:
        body = await request.json()
        store.lifetime = int(body.get("lifetime", store.lifetime))
        store.deny = bool(body.get("deny", store.deny))
        store.subject = str(body.get("subject", store.subject))
        if "reported_lifetime" in body:
            store.reported_lifetime = body["reported_lifetime"]
        return JSONResponse({"ok": True})

    async def issued(request: Request) -> Response:
        return JSONResponse(sorted(store.secrets - {""}))

    async def reset(request: Request) -> Response:
        fresh = Store(issuer)
        store.lifetime, store.reported_lifetime = fresh.lifetime, fresh.reported_lifetime
        store.deny, store.subject = fresh.deny, fresh.subject
        store.stats.clear()
        store.mcp_requests.clear()
        return JSONResponse({"ok": True})

    async def revoke(request: Request) -> Response:
        store.access.clear()
        return JSONResponse({"ok": True})

    http_app = server.streamable_http_app()
    sse_app = server.sse_app()
    seen: set[str] = set()
    routes = []
    for route in [*http_app.routes, *sse_app.routes]:
        path = getattr(route, "path", None)
        if path not in seen:
            seen.add(path)
            routes.append(route)
    return Starlette(
        routes=[
            *routes,
            Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
            Route("/oauth/register", register, methods=["POST"]),
            Route("/oauth/authorize", authorize, methods=["GET"]),
            Route("/oauth/token", token, methods=["POST"]),
            Route("/admin/stats", stats, methods=["GET"]),
            Route("/admin/config", configure, methods=["POST"]),
            Route("/admin/revoke", revoke, methods=["POST"]),
            Route("/admin/reset", reset, methods=["POST"]),
            Route("/admin/secrets", issued, methods=["GET"]),
        ],
        middleware=http_app.user_middleware,
        lifespan=lambda _app: server._lowlevel_server.session_manager.run(),  # type: ignore[attr-defined]
    )


def main() -> None:
    import uvicorn

    warnings.simplefilter("ignore")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("PORT", "0"))))
    sock.listen(128)
    port = sock.getsockname()[1]
    print(f"PORT {port}", flush=True)
    config = uvicorn.Config(build_app(port), log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
