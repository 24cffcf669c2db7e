"""HTTP function `console`: the support console (the `console` package), behind Identity-Aware Proxy.

Thin: every request is dispatched into the console's Flask app, built on the first request
(no I/O at import). Its settings are read then (`console.config`).
"""

from __future__ import annotations

import functools
import io

import functions_framework


@functools.cache
def _app():
    from console.app import create_app

    return create_app()


@functions_framework.http
def console(request):
    app = _app()
    # functions-framework reads the body after the function returns; the console's app reads it
    # from a copy, so both see it whole.
    body = request.get_data()
    environ = {**request.environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
    with app.request_context(environ):
        return app.full_dispatch_request()
