"""``ducklearn events ...``: list, verify and export the audit log.

The store is ``--events URL`` (default ``$DUCKLEARN_EVENTS``, else the event log inside the
default registry, ``$DUCKLEARN_REGISTRY`` or ``./ducklearn-registry``). ``verify`` exits 0
when the chain is intact and 2 when it is not, printing where it breaks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

__all__ = ["add_subcommands", "default_events_url"]


def default_events_url() -> str:
    env = os.environ.get("DUCKLEARN_EVENTS")
    if env:
        return env
    from ducklearn._db import parse_url
    from ducklearn.registry.cli import default_registry

    location = default_registry()
    dialect, target = parse_url(location, argument="--registry")
    if dialect == "postgresql" or "://" in location or location.endswith(
        (".db", ".sqlite", ".sqlite3")
    ):
        return location
    return os.path.join(location, "catalog.db")


def _open(args: argparse.Namespace):
    from ducklearn._db import parse_url
    from ducklearn.events import EventStore

    url = args.events or default_events_url()
    dialect, target = parse_url(url, argument="--events")
    if dialect == "sqlite" and not os.path.exists(target):
        raise FileNotFoundError(f"no event store at {target!r}; pass --events URL or set "
                                "$DUCKLEARN_EVENTS")
    return EventStore(url)


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in (("type", args.type), ("model", args.model),
                              ("version", args.version), ("actor", args.actor),
                              ("subject", args.subject), ("since", args.since),
                              ("until", args.until)) if v is not None}


def _cmd_list(args: argparse.Namespace, store: Any) -> int:
    events = store.query(**_filters(args), limit=args.limit, descending=args.newest_first)
    if args.json:
        print(json.dumps([e.to_dict() for e in events], indent=2))
        return 0
    print(f"{'seq':>7}  {'time (UTC)':23}  {'type':20} {'actor':14} {'subject':24} payload")
    for e in events:
        when = e.time.strftime("%Y-%m-%d %H:%M:%S.%f")[:23]
        print(f"{e.seq:>7}  {when}  {e.type:20} {e.actor:14} {e.subject:24} "
              f"{json.dumps(e.payload, sort_keys=True)[:120]}")
    return 0


def _cmd_verify(args: argparse.Namespace, store: Any) -> int:
    anchor = None
    if args.anchor:
        seq, sep, h = args.anchor.partition(":")
        if not sep or not seq.isdigit() or len(h) != 64:
            raise ValueError("--anchor takes SEQ:HASH as printed by 'ducklearn events head'")
        anchor = (int(seq), h)
    report = store.verify(anchor=anchor)
    if args.json:
        print(json.dumps({"ok": report.ok, "checked": report.checked,
                          "head_seq": report.head_seq, "head_hash": report.head_hash,
                          "problems": [p.__dict__ for p in report.problems]}, indent=2))
    else:
        print(report.summary())
    return 0 if report.ok else 2


def _cmd_export(args: argparse.Namespace, store: Any) -> int:
    if args.out == "-":
        n = store.export_jsonl(sys.stdout, **_filters(args))
    else:
        n = store.export_jsonl(args.out, **_filters(args))
    print(f"exported {n} event(s)", file=sys.stderr)
    return 0


def _cmd_head(args: argparse.Namespace, store: Any) -> int:
    seq, h = store.head()
    print(json.dumps({"seq": seq, "hash": h}) if args.json else f"{seq}:{h}")
    return 0


def _run(handler):
    def run(args: argparse.Namespace) -> int:
        try:
            store = _open(args)
        except (ValueError, TypeError, OSError, RuntimeError, ImportError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        try:
            return handler(args, store)
        except (ValueError, TypeError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            store.close()

    return run


def add_subcommands(subparsers: Any) -> None:
    """Register ``ducklearn events ...`` on the main parser's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--events", default=None, metavar="URL",
                        help="sqlite:///events.db, a file path or postgresql://... (default "
                             "$DUCKLEARN_EVENTS, else the default registry's log)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--type", help="event type, e.g. alias.moved")
    filters.add_argument("--model")
    filters.add_argument("--version")
    filters.add_argument("--actor")
    filters.add_argument("--subject")
    filters.add_argument("--since", help="ISO time with offset (inclusive)")
    filters.add_argument("--until", help="ISO time with offset (exclusive)")

    top = subparsers.add_parser("events", help="audit log: list, verify, export",
                                description="List, verify and export the audit log.")
    sub = top.add_subparsers(dest="events_command", required=True, metavar="COMMAND")
    p = sub.add_parser("list", parents=[common, filters], help="list events")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--newest-first", action="store_true")
    p.set_defaults(func=_run(_cmd_list))
    p = sub.add_parser("verify", parents=[common], help="recompute the hash chain")
    p.add_argument("--anchor", metavar="SEQ:HASH", help="a head saved earlier ('events head')")
    p.set_defaults(func=_run(_cmd_verify))
    p = sub.add_parser("export", parents=[common, filters], help="write JSON lines")
    p.add_argument("out", help="output file, or - for stdout")
    p.set_defaults(func=_run(_cmd_export))
    p = sub.add_parser("head", parents=[common], help="print SEQ:HASH of the newest event "
                       "(keep it elsewhere as an anchor)")
    p.set_defaults(func=_run(_cmd_head))
