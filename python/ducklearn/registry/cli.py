"""``ducklearn registry ...``: list, inspect, register, promote, approve, roll back and
collect from the shell.

The registry is ``--registry PATH_OR_URL`` (default ``$DUCKLEARN_REGISTRY`` or
``./ducklearn-registry``) and the acting principal ``--actor`` (default
``$DUCKLEARN_ACTOR`` or the OS user). ``--json`` prints machine-readable output.
Exit codes: 0 ok, 1 error, 3 permission denied, 4 not found.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["add_subcommands", "default_registry"]


def default_registry() -> str:
    return os.environ.get("DUCKLEARN_REGISTRY") or "ducklearn-registry"


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--registry", default=None, metavar="PATH_OR_URL",
                   help="registry directory, sqlite:///file.db or postgresql://... "
                        "(default $DUCKLEARN_REGISTRY or ./ducklearn-registry)")
    p.add_argument("--actor", default=None, help="acting principal (default "
                   "$DUCKLEARN_ACTOR or the OS user)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def _key_values(items: list[str] | None, argument: str, numbers: bool) -> dict[str, Any] | None:
    if not items:
        return None
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{argument} takes KEY=VALUE, got {item!r}")
        if numbers:
            try:
                out[key] = float(value)
            except ValueError:
                raise ValueError(f"{argument} {key}: {value!r} is not a number") from None
        else:
            out[key] = value
    return out


def _split_ref(text: str) -> tuple[str, str]:
    name, sep, ref = text.partition("@")
    return name, (ref if sep else "latest")


def _print(args: argparse.Namespace, data: Any, text: Callable[[], str]) -> None:
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(text())


def _open(args: argparse.Namespace):
    from ducklearn.registry import Registry

    return Registry(args.registry or default_registry(), actor=args.actor)


def _version_line(v: Any) -> str:
    metrics = " ".join(f"{k}={val:g}" for k, val in sorted(v.metrics.items()))
    return (f"{v.version:>10}  {v.status:8}  {v.bump:8}  {v.created_at:%Y-%m-%d %H:%M:%S}  "
            f"{v.created_by:12}  {metrics}")


def _cmd_list(args: argparse.Namespace, reg: Any) -> None:
    models = reg.models()
    _print(args, [m.to_dict() for m in models], lambda: "\n".join(
        [f"{'model':24} {'versions':>8} {'latest':>10}  aliases"]
        + [f"{m.name:24} {m.versions:>8} {m.latest or '-':>10}  "
           + ", ".join(f"{a}={v}" for a, v in m.aliases.items()) for m in models]))


def _cmd_versions(args: argparse.Namespace, reg: Any) -> None:
    versions = reg.versions(args.name, status=args.status)
    _print(args, [v.to_dict() for v in versions], lambda: "\n".join(
        [f"{'version':>10}  {'status':8}  {'bump':8}  {'created (UTC)':19}  {'by':12}  metrics"]
        + [_version_line(v) for v in versions]))


def _cmd_show(args: argparse.Namespace, reg: Any) -> None:
    name, ref = _split_ref(args.ref)
    v = reg.get(name, ref)
    aliases = [a for a, ver in reg.aliases(name).items() if ver == v.version]

    def text() -> str:
        lines = [f"{v.ref}  ({v.status}{', aliases: ' + ', '.join(aliases) if aliases else ''})",
                 f"  type          {v.model_type}",
                 f"  created       {v.created_at:%Y-%m-%d %H:%M:%S} UTC by {v.created_by}",
                 f"  bump          {v.bump} (computed {v.computed_bump})"
                 + (f", reason: {v.bump_reason}" if v.bump_reason else ""),
                 f"  base          {v.base_version or '-'}   parent {v.parent or '-'}",
                 f"  run           {v.run_id or '-'}",
                 f"  data          {v.data_fingerprint or '-'}",
                 f"  schema        {v.schema_hash or '-'}",
                 f"  library       {v.library_version}",
                 f"  contract      {json.dumps(v.contract)}",
                 f"  size          {v.size_bytes:,} bytes of tensors"]
        if v.metrics:
            lines.append("  metrics       " + ", ".join(f"{k}={val:g}"
                                                         for k, val in v.metrics.items()))
        if v.tags:
            lines.append("  tags          " + ", ".join(f"{k}={val}" for k, val in v.tags.items()))
        if v.description:
            lines.append(f"  description   {v.description}")
        return "\n".join(lines)

    _print(args, {**v.to_dict(), "aliases": aliases}, text)


def _cmd_register(args: argparse.Namespace, reg: Any) -> None:
    v = reg.register(args.name, args.file, parent=args.parent, run_id=args.run_id,
                     data_fingerprint=args.data_fingerprint,
                     metrics=_key_values(args.metric, "--metric", True),
                     tags=_key_values(args.tag, "--tag", False), description=args.description,
                     bump=args.bump, reason=args.reason)
    _print(args, v.to_dict(), lambda: f"registered {v.ref} ({v.bump}; computed "
           f"{v.computed_bump})")


def _cmd_promote(args: argparse.Namespace, reg: Any) -> None:
    from ducklearn.registry.governance import check_alias

    check_alias(args.alias)
    if args.alias in reg.protected_aliases(args.name):
        r = reg.request_promotion(args.name, args.alias, args.version, reason=args.reason)
        _print(args, r.to_dict(), lambda: (
            f"{args.name}:{args.alias} is protected: created promotion request {r.id} "
            f"({r.name}@{r.version}); a different approver runs: ducklearn registry approve "
            f"{r.id}"))
        return
    m = reg.promote(args.name, args.alias, args.version, reason=args.reason)
    _print(args, m.to_dict(), lambda: f"{m.name}:{m.alias} {m.from_version or '(new)'} -> "
           f"{m.to_version}")


def _cmd_approve(args: argparse.Namespace, reg: Any) -> None:
    m = reg.approve(args.request_id, reason=args.reason)
    _print(args, m.to_dict(), lambda: f"approved request {args.request_id}: {m.name}:{m.alias} "
           f"{m.from_version or '(new)'} -> {m.to_version}")


def _cmd_reject(args: argparse.Namespace, reg: Any) -> None:
    r = reg.reject(args.request_id, reason=args.reason)
    _print(args, r.to_dict(), lambda: f"rejected request {r.id}")


def _cmd_requests(args: argparse.Namespace, reg: Any) -> None:
    status = None if args.status == "all" else args.status
    reqs = reg.requests(args.name, status=status)
    _print(args, [r.to_dict() for r in reqs], lambda: "\n".join(
        [f"{'id':>5}  {'status':8}  {'model@version':30} {'alias':12} {'by':12} reason"]
        + [f"{r.id:>5}  {r.status:8}  {r.name + '@' + r.version:30} {r.alias:12} "
           f"{r.requested_by:12} {r.reason}" for r in reqs]))


def _cmd_rollback(args: argparse.Namespace, reg: Any) -> None:
    m = reg.rollback(args.name, args.alias, reason=args.reason, to=args.to)
    _print(args, m.to_dict(), lambda: f"rolled back {m.name}:{m.alias} {m.from_version} -> "
           f"{m.to_version}")


def _cmd_history(args: argparse.Namespace, reg: Any) -> None:
    if args.at is not None:
        if args.alias is None:
            raise ValueError("--at needs --alias (which alias to look up)")
        v = reg.version_at(args.name, args.alias, args.at)
        _print(args, {"name": args.name, "alias": args.alias, "at": args.at, "version": v},
               lambda: f"{args.name}:{args.alias} at {args.at}: {v or '(not set)'}")
        return
    moves = reg.history(args.name, args.alias)
    _print(args, [m.to_dict() for m in moves], lambda: "\n".join(
        [f"{'when (UTC)':19}  {'alias':12} {'kind':8} {'from':>10} -> {'to':10} {'by':12} "
         "reason"]
        + [f"{m.at:%Y-%m-%d %H:%M:%S}  {m.alias:12} {m.kind:8} {m.from_version or '-':>10} -> "
           f"{m.to_version or '-':10} {m.actor:12} {m.reason}"
           + (f" [approved by {m.approved_by}, request {m.request_id}]" if m.approved_by
              else "") for m in moves]))


def _cmd_lineage(args: argparse.Namespace, reg: Any) -> None:
    name, ref = _split_ref(args.ref)
    chain = reg.lineage(name, ref)
    _print(args, [v.to_dict() for v in chain], lambda: "\n".join(
        ("  " * i + ("└─ " if i else "") + f"{v.ref}  run={v.run_id or '-'}  "
         f"data={(v.data_fingerprint or '-')[:23]}  schema={(v.schema_hash or '-')[:23]}  "
         f"lib={v.library_version}") for i, v in enumerate(chain)))


def _cmd_export(args: argparse.Namespace, reg: Any) -> None:
    name, ref = _split_ref(args.ref)
    v = reg.export(name, ref, args.path)
    _print(args, {"ref": v.ref, "path": args.path}, lambda: f"wrote {v.ref} to {args.path}")


def _cmd_status(args: argparse.Namespace, reg: Any) -> None:
    fn = reg.retire if args.command_name == "retire" else reg.archive
    v = fn(args.name, args.version, reason=args.reason)
    _print(args, v.to_dict(), lambda: f"{v.ref} is now {v.status}")


def _cmd_retention(args: argparse.Namespace, reg: Any) -> None:
    out = reg.apply_retention(args.model, keep_last=args.keep_last,
                              min_age_days=args.min_age_days, dry_run=args.dry_run)
    verb = "would archive" if args.dry_run else "archived"
    _print(args, [v.ref for v in out], lambda: f"{verb} {len(out)} version(s)"
           + "".join(f"\n  {v.ref}" for v in out))


def _cmd_gc(args: argparse.Namespace, reg: Any) -> None:
    r = reg.gc(dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    _print(args, r.__dict__, lambda: f"{verb} {r.deleted} unreferenced blob(s), "
           f"{r.freed_bytes:,} bytes; kept {r.kept}")


def _cmd_grant(args: argparse.Namespace, reg: Any) -> None:
    (reg.grant if args.command_name == "grant" else reg.revoke)(args.principal, args.role,
                                                                model=args.model)
    _print(args, {"principal": args.principal, "role": args.role, "model": args.model},
           lambda: (f"granted {args.role} on {args.model} to {args.principal}"
                    if args.command_name == "grant" else
                    f"revoked {args.role} on {args.model} from {args.principal}"))


def _cmd_roles(args: argparse.Namespace, reg: Any) -> None:
    rows = reg.roles(args.principal)
    _print(args, rows, lambda: "\n".join(
        [f"{'principal':20} {'role':10} {'scope':20} granted by"]
        + [f"{r['principal']:20} {r['role']:10} {r['scope']:20} {r['granted_by']}"
           for r in rows]))


def _cmd_protect(args: argparse.Namespace, reg: Any) -> None:
    out = reg.protect(args.name, args.aliases)
    _print(args, out, lambda: f"{args.name}: protected aliases {', '.join(out) or '(none)'}")


def _run(handler: Callable[[argparse.Namespace, Any], None]) -> Callable[[argparse.Namespace],
                                                                          int]:
    def run(args: argparse.Namespace) -> int:
        from ducklearn.modelfile import ModelFileError
        from ducklearn.registry import NotFoundError, PermissionDenied, RegistryError

        try:
            reg = _open(args)
        except (ValueError, TypeError, OSError, RuntimeError) as exc:
            print(f"error: cannot open the registry: {exc}", file=sys.stderr)
            return 1
        try:
            handler(args, reg)
            return 0
        except PermissionDenied as exc:
            print(f"permission denied: {exc}", file=sys.stderr)
            return 3
        except NotFoundError as exc:
            print(f"not found: {exc.args[0] if exc.args else exc}", file=sys.stderr)
            return 4
        except (RegistryError, ModelFileError, ValueError, TypeError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            reg.close()

    return run


def add_subcommands(subparsers: Any) -> None:
    """Register ``ducklearn registry ...`` on the main parser's subparsers."""
    common = _common()
    top = subparsers.add_parser(
        "registry", help="model registry: versions, aliases, approvals, lineage",
        description="List, inspect, register, promote, approve, roll back and collect models "
                    "from the shell.")
    sub = top.add_subparsers(dest="registry_command", required=True, metavar="COMMAND")

    def cmd(name: str, handler: Callable, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(func=_run(handler), command_name=name)
        return p

    cmd("list", _cmd_list, "list models with their newest version and aliases")
    p = cmd("versions", _cmd_versions, "list the versions of a model")
    p.add_argument("name")
    p.add_argument("--status", choices=["active", "retired", "archived"])
    p = cmd("show", _cmd_show, "show one version (NAME, NAME@VERSION or NAME@ALIAS)")
    p.add_argument("ref", metavar="NAME[@VERSION|@ALIAS]")
    p = cmd("register", _cmd_register, "register a model file; the version is computed")
    p.add_argument("name")
    p.add_argument("file", help="a .safetensors model file (ducklearn.modelfile.save_model)")
    p.add_argument("--parent", help="version it was trained from (VERSION or NAME@VERSION)")
    p.add_argument("--run-id")
    p.add_argument("--data-fingerprint")
    p.add_argument("--metric", action="append", metavar="NAME=VALUE")
    p.add_argument("--tag", action="append", metavar="KEY=VALUE")
    p.add_argument("--description")
    p.add_argument("--bump", choices=["major", "minor", "patch"],
                   help="override the computed bump (needs --reason)")
    p.add_argument("--reason")
    p = cmd("promote", _cmd_promote, "point an alias at a version (protected aliases: "
            "creates an approval request)")
    p.add_argument("name")
    p.add_argument("alias")
    p.add_argument("version")
    p.add_argument("--reason", required=True)
    p = cmd("approve", _cmd_approve, "approve a promotion request (not your own)")
    p.add_argument("request_id", type=int)
    p.add_argument("--reason")
    p = cmd("reject", _cmd_reject, "reject a promotion request")
    p.add_argument("request_id", type=int)
    p.add_argument("--reason", required=True)
    p = cmd("requests", _cmd_requests, "list promotion requests")
    p.add_argument("name", nargs="?")
    p.add_argument("--status", default="pending",
                   choices=["pending", "approved", "rejected", "all"])
    p = cmd("rollback", _cmd_rollback, "move an alias back to its previous version")
    p.add_argument("name")
    p.add_argument("alias")
    p.add_argument("--to", help="a specific earlier version")
    p.add_argument("--reason", required=True)
    p = cmd("history", _cmd_history, "alias moves (who, when, why, from, to)")
    p.add_argument("name")
    p.add_argument("--alias")
    p.add_argument("--at", metavar="TIME", help="ISO time (with offset): which version the "
                   "alias pointed to then")
    p = cmd("lineage", _cmd_lineage, "walk a version's ancestry")
    p.add_argument("ref", metavar="NAME[@VERSION|@ALIAS]")
    p = cmd("export", _cmd_export, "write a version as a model file")
    p.add_argument("ref", metavar="NAME[@VERSION|@ALIAS]")
    p.add_argument("path")
    for name, help_ in (("retire", "retire a version (loadable, no longer promotable)"),
                        ("archive", "archive a version (tensors released for gc)")):
        p = cmd(name, _cmd_status, help_)
        p.add_argument("name")
        p.add_argument("version")
        p.add_argument("--reason", required=True)
    p = cmd("retention", _cmd_retention, "archive old versions by policy")
    p.add_argument("--model")
    p.add_argument("--keep-last", type=int, default=10)
    p.add_argument("--min-age-days", type=float, default=30.0)
    p.add_argument("--dry-run", action="store_true")
    p = cmd("gc", _cmd_gc, "delete unreferenced blobs")
    p.add_argument("--dry-run", action="store_true")
    for name in ("grant", "revoke"):
        p = cmd(name, _cmd_grant, f"{name} a role (viewer, developer, approver, admin)")
        p.add_argument("principal")
        p.add_argument("role", choices=["viewer", "developer", "approver", "admin"])
        p.add_argument("--model", default="*", help="one model (default: all models)")
    p = cmd("roles", _cmd_roles, "list role bindings")
    p.add_argument("principal", nargs="?")
    p = cmd("protect", _cmd_protect, "set the protected aliases of a model")
    p.add_argument("name")
    p.add_argument("aliases", nargs="*")
