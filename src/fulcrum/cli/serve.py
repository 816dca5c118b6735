"""``fulcrum serve [REF ...]``: serve models over HTTP (KServe v2 + a friendly JSON route)."""

from __future__ import annotations

import argparse

from ._common import add_registry_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve models over HTTP (KServe v2 + /v1/models/NAME/predict)",
        description="Serve registered models. REF is name (latest), name@3 or name@alias; aliases are followed "
        "live (a `fulcrum promote` is picked up within a second). Without REF: every model, at its production "
        "alias when it has one. Binds 127.0.0.1; a non-loopback --host needs an API key (`fulcrum keys create`).",
    )
    p.add_argument("refs", nargs="*", metavar="REF", help="models to serve (default: all)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="server processes (each loads every model)")
    ray = p.add_argument_group("Ray Serve", "--backend ray runs the same app in Ray Serve replicas behind Ray's HTTP "
                               "proxy, which binds --host/--port (auth, limits, batching, metrics and monitors "
                               "unchanged; no TLS: put a TLS proxy in front)")
    ray.add_argument("--backend", choices=("local", "ray"), default="local",
                     help="local (default: uvicorn in this process, --workers processes) | ray (Ray Serve)")
    ray.add_argument("--replicas", type=int, default=2, help="Ray Serve replicas (default 2)")
    ray.add_argument("--min-replicas", type=int, default=None, help="autoscale: at least this many replicas")
    ray.add_argument("--max-replicas", type=int, default=None, help="autoscale: at most this many replicas")
    ray.add_argument("--address", metavar="ADDR",
                     help="the Ray cluster (auto: the one `ray start --head` runs here; HOST:PORT; "
                          "ray://HOST:10001); default: a local cluster on this machine")
    p.add_argument("--enable-admin", action="store_true", help="turn on /admin routes (need an admin key)")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without API keys (logged loudly)")
    p.add_argument("--ssl-certfile", metavar="PEM", help="TLS certificate (with --ssl-keyfile)")
    p.add_argument("--ssl-keyfile", metavar="PEM", help="TLS private key")
    b = p.add_argument_group("batching (per model)")
    b.add_argument("--max-batch-size", type=int, default=64, help="most rows computed together; 1 = no batching")
    b.add_argument("--max-latency-ms", type=float, default=5.0, help="longest a request waits for its batch to fill")
    b.add_argument("--max-queue", type=int, default=1024,
                   help="waiting requests per model before 503; a request that would wait past half its deadline "
                        "at the measured batch cycle is refused (503) at once too")
    b.add_argument("--timeout", type=float, default=10.0,
                   help="request deadline in seconds, from arrival (504 then; never computed after it)")
    lim = p.add_argument_group("limits and output hardening")
    lim.add_argument("--max-body-bytes", type=int, default=1 << 20, help="largest request body (413 beyond)")
    lim.add_argument("--max-rows", type=int, default=1024, help="most rows per request (413 beyond)")
    lim.add_argument("--rate-limit", type=float, default=0.0, help="requests/s per API key (0 = off; 429 beyond)")
    lim.add_argument("--rate-burst", type=int, default=None, help="token-bucket size (default: the rate)")
    lim.add_argument("--top-k", type=int, default=None, help="return only the k most likely labels")
    lim.add_argument("--round", type=int, default=None, dest="round_decimals", help="round probabilities to N decimals")
    o = p.add_argument_group("operations")
    o.add_argument("--poll-interval", type=float, default=1.0, help="seconds between registry alias checks")
    o.add_argument("--no-access-log", action="store_true", help="no JSON access log lines")
    o.add_argument("--no-monitor", action="store_true", help="no OOD/drift monitors")
    o.add_argument("--no-feedback", action="store_true", help="record no requests (same as --record none)")
    r = p.add_argument_group(
        "serving records",
        "Inputs and predictions of recorded requests (for feedback, the live metric and retraining), feedback, usage "
        "counters and monitor snapshots go to their own SQLite database, never the registry index. Recorded rows are "
        "bounded: beyond --record-max-rows or --record-max-mb the oldest requests are dropped first (those without "
        "feedback before those with).",
    )
    r.add_argument("--records-db", metavar="PATH", default=None,
                   help="records database (default: <registry>.serving.sqlite beside the registry directory)")
    r.add_argument("--record", default="all", metavar="none|sample:RATE|all",
                   help="what is recorded of each request: all (default), a random share (sample:0.1), or none "
                        "(feedback then has nothing to attach to)")
    r.add_argument("--record-max-rows", type=int, default=1_000_000, help="recorded rows kept (default 1,000,000)")
    r.add_argument("--record-max-mb", type=float, default=256.0, help="megabytes of recorded data kept (default 256)")
    o.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    t = p.add_argument_group("slow clients", "Bounds on how long a client may take (seconds); none needs an API key "
                             "to hold a connection, so each is bounded.")
    t.add_argument("--header-timeout", type=float, default=10.0,
                   help="request headers must arrive within this; else the connection closes (default 10)")
    t.add_argument("--body-timeout", type=float, default=30.0,
                   help="a request body must arrive within this after its headers; else 408 (default 30)")
    t.add_argument("--keepalive-timeout", type=float, default=5.0,
                   help="an idle keep-alive connection closes after this (default 5)")
    add_registry_option(p)
    p.set_defaults(func=run)


def settings_from(args: argparse.Namespace) -> object:
    from ..serve import BatchSpec, ServeSettings

    return ServeSettings(
        host=args.host, port=args.port, workers=args.workers, registry=args.registry,
        enable_admin=args.enable_admin, insecure=args.insecure,
        ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile,
        batch=BatchSpec(max_batch_size=args.max_batch_size, max_latency_ms=args.max_latency_ms,
                        max_queue=args.max_queue, timeout_s=args.timeout),
        max_body_bytes=args.max_body_bytes, max_rows=args.max_rows,
        rate_limit=args.rate_limit, rate_burst=args.rate_burst,
        top_k=args.top_k, round_decimals=args.round_decimals,
        poll_interval_s=args.poll_interval, access_log=not args.no_access_log,
        monitor=not args.no_monitor, feedback=not args.no_feedback, log_level=args.log_level,
        header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout,
        keepalive_timeout_s=args.keepalive_timeout,
        records_db=args.records_db, record=args.record, record_max_rows=args.record_max_rows,
        record_max_mb=args.record_max_mb,
    )


def run(args: argparse.Namespace) -> int:
    from ..serve import run as serve_run

    if getattr(args, "backend", "local") == "ray":
        from ..serve._ray import run_ray

        run_ray(list(args.refs), settings_from(args), registry=args.registry, replicas=args.replicas,  # type: ignore[arg-type]
                min_replicas=args.min_replicas, max_replicas=args.max_replicas, address=args.address)
        return 0
    serve_run(list(args.refs), settings_from(args), registry=args.registry)  # type: ignore[arg-type]
    return 0
