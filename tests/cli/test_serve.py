"""homefeed.cli.serve: the options `serve` hands uvicorn, in one process or in N.

That the app then sees the socket's peer is tested against a served app in
tests/test_app_client_address.py; here, that `serve` keeps those options."""

from __future__ import annotations

import uvicorn
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from homefeed.cli.serve import APP, _uvicorn_options


def test_serve_leaves_x_forwarded_for_to_the_app() -> None:
    # uvicorn wraps the app in its own proxy-headers rule unless told not to; both of serve's
    # paths (one process, or N balanced ones) build their config from these options.
    config = uvicorn.Config(APP, **_uvicorn_options("warning"))  # type: ignore[arg-type]
    config.load()
    assert not isinstance(config.loaded_app, ProxyHeadersMiddleware)
    default = uvicorn.Config(APP, factory=True)
    default.load()
    assert isinstance(default.loaded_app, ProxyHeadersMiddleware)  # what it guards against
