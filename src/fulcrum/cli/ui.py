"""``fulcrum ui``: the read-only web dashboard (models, versions, variants, costs, live serving)."""

from __future__ import annotations

import argparse
import os

from ._common import add_registry_option, note, registry_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ui",
        help="read-only web dashboard: models, versions, variants, costs, live serving",
        description="Serve the dashboard at http://HOST:PORT/ui/ (also mounted at /ui by `fulcrum serve`). Binds "
        "127.0.0.1; a non-loopback --host needs an API key (`fulcrum keys create`), as `fulcrum serve` does, and once "
        "any key exists its JSON needs one (the page asks for it).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8050)
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without API keys (logged loudly)")
    p.add_argument("--server", metavar="URL", help="a running `fulcrum serve` whose /metrics and monitors the live "
                   "page reads (default: only what servers saved to the serving records)")
    p.add_argument("--server-key", metavar="KEY", default=None,
                   help="API key for --server (default: $FULCRUM_SERVER_KEY)")
    p.add_argument("--records-db", metavar="PATH", default=None,
                   help="serving records database (default: <registry>.serving.sqlite, as `fulcrum serve`)")
    p.add_argument("--ssl-certfile", metavar="PEM", help="TLS certificate (with --ssl-keyfile)")
    p.add_argument("--ssl-keyfile", metavar="PEM", help="TLS private key")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    add_registry_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ..errors import ConfigError
    from ..serve import ServeSettings, check_bind
    from ..serve._app import configure_logging
    from ..ui import create_standalone_app

    for path in (args.ssl_certfile, args.ssl_keyfile):
        if path and not os.path.isfile(path):
            raise ConfigError(f"TLS file {path!r} does not exist; pass PEM files to --ssl-certfile/--ssl-keyfile.")
    configure_logging(args.log_level)
    reg = registry_from(args)
    settings = ServeSettings(host=args.host, port=args.port, insecure=args.insecure, ssl_certfile=args.ssl_certfile,
                             ssl_keyfile=args.ssl_keyfile)  # the server's checks of port and TLS files
    check_bind(settings, reg)  # the server's rule: no non-loopback bind without an API key
    app = create_standalone_app(reg, server=args.server, server_key=args.server_key or os.environ.get("FULCRUM_SERVER_KEY"),
                                records_db=args.records_db)
    scheme = "https" if args.ssl_certfile else "http"
    note(f"dashboard: {scheme}://{args.host}:{args.port}/ui/  (registry {reg.root}; Ctrl-C stops)")
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)
    return 0
