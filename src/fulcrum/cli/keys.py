"""``fulcrum keys create|list|revoke``: API keys for `fulcrum serve`, stored hashed in the registry."""

from __future__ import annotations

import argparse

from ._common import add_registry_option, print_json, registry_from, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="create, list and revoke API keys for `fulcrum serve`")
    ks = p.add_subparsers(dest="keys_cmd", metavar="COMMAND", required=True)
    c = ks.add_parser("create", help="create a key and print it (once: only its hash is stored)")
    c.add_argument("--scope", choices=["predict", "admin"], default="predict")
    c.add_argument("--name", default=None, help="a label to recognise the key by")
    c.add_argument("--json", action="store_true")
    add_registry_option(c)
    c.set_defaults(func=create)
    li = ks.add_parser("list", help="list keys (ids, names, scopes; never the keys)")
    li.add_argument("--json", action="store_true")
    add_registry_option(li)
    li.set_defaults(func=list_keys)
    r = ks.add_parser("revoke", help="revoke a key by id (a running server notices within a second)")
    r.add_argument("id")
    add_registry_option(r)
    r.set_defaults(func=revoke)


def _store(args: argparse.Namespace) -> object:
    from ..serve import KeyStore

    return KeyStore(registry_from(args))


def create(args: argparse.Namespace) -> int:
    record, token = _store(args).create(args.scope, args.name)  # type: ignore[attr-defined]
    if args.json:
        print_json({**record, "key": token})
    else:
        print(token)
        import sys

        print(f"created {record['scope']} key {record['id']}"
              f"{' (' + record['name'] + ')' if record['name'] else ''}; store it now, it is not shown again.",
              file=sys.stderr)
    return 0


def list_keys(args: argparse.Namespace) -> int:
    keys = _store(args).list()  # type: ignore[attr-defined]
    if args.json:
        print_json(keys)
    elif not keys:
        print("no API keys; create one with `fulcrum keys create --scope predict`")
    else:
        print(table(["id", "name", "scope", "created", "revoked"],
                    [[k["id"], k["name"], k["scope"], k["created"], k["revoked"]] for k in keys]))
    return 0


def revoke(args: argparse.Namespace) -> int:
    import sys

    store = _store(args)
    was_active = args.id in store.active()  # type: ignore[attr-defined]
    rec = store.revoke(args.id)  # type: ignore[attr-defined]
    print(f"revoked key {rec['id']} ({rec['scope']}) at {rec['revoked']}")
    if was_active and not store.active():  # type: ignore[attr-defined]
        print("warning: that was the last active API key: a server using this registry now refuses every request "
              "(401) until a new key exists; create one with `fulcrum keys create --scope predict`.", file=sys.stderr)
    return 0
