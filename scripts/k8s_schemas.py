"""Make the kubernetes-validate wheel's JSON schemas readable by kubeconform.

The wheel's per-kind schemas point their ``$ref``s at a shared
``/api/_definitions.json#/$defs/...``, which kubeconform cannot follow (it then
reports a misleading "could not find schema"). This copies one Kubernetes
version's strict schemas into ``OUT/vX.Y.Z-standalone-strict/``, each file
carrying the definitions it reaches under its own ``$defs`` with local refs.
Definitions are embedded rather than expanded in place because some of them
are recursive (JSONSchemaProps). Usage: ``python scripts/k8s_schemas.py OUT
VERSION...``; ``VERSION`` may be ``oldest`` or ``newest`` (of the wheel).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate

# A kind's file points into the shared file; the shared file into itself.
PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/")


def _name(ref: object) -> str | None:
    """The definition a ref names, or None for any other ref."""
    if isinstance(ref, str):
        for prefix in PREFIXES:
            if ref.startswith(prefix):
                return ref[len(prefix):]
    return None


def wheel_dir() -> Path:
    """The wheel's schema directory (one sub-directory per Kubernetes version)."""
    return Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"


def shipped_versions() -> list[str]:
    """The versions with strict schemas in the wheel, oldest first."""
    found = []
    for entry in wheel_dir().iterdir():
        match = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)-local-strict", entry.name)
        if match:
            found.append(tuple(int(part) for part in match.groups()))
    return [".".join(str(part) for part in version) for version in sorted(found)]


def _refs(node: Any) -> set[str]:
    """Every definition name a (sub)schema refers to."""
    names: set[str] = set()
    if isinstance(node, dict):
        name = _name(node.get("$ref"))
        if name is not None:
            names.add(name)
        for value in node.values():
            names |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            names |= _refs(value)
    return names


def _localise(node: Any) -> Any:
    """The schema with each shared ref turned into a ref into the file itself."""
    if isinstance(node, dict):
        out = {key: _localise(value) for key, value in node.items()}
        name = _name(out.get("$ref"))
        if name is not None:
            out["$ref"] = "#/$defs/" + name
        return out
    if isinstance(node, list):
        return [_localise(value) for value in node]
    return node


def standalone(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """One kind's schema with every definition it reaches, transitively."""
    wanted, todo = set(), _refs(schema)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo |= _refs(definitions[name])
    out = _localise(schema)
    out.pop("$id", None)
    if wanted:
        out["$defs"] = {name: _localise(definitions[name]) for name in sorted(wanted)}
    return out


def convert(version: str, out: Path) -> int:
    """Write one version's standalone strict schemas; return how many."""
    source = wheel_dir() / f"v{version}-local-strict"
    target = out / f"v{version}-standalone-strict"
    target.mkdir(parents=True, exist_ok=True)
    definitions = json.loads((source / "_definitions.json").read_text())["$defs"]
    count = 0
    for path in sorted(source.glob("*.json")):
        if path.name in {"_definitions.json", "all.json"}:
            continue
        schema = json.loads(path.read_text())
        (target / path.name).write_text(json.dumps(standalone(schema, definitions)))
        count += 1
    return count


def main(argv: list[str]) -> int:
    """Convert the versions named on the command line."""
    if len(argv) < 2:
        sys.stderr.write("usage: k8s_schemas.py OUT VERSION... (or oldest/newest)\n")
        return 2
    out, versions = Path(argv[0]), shipped_versions()
    aliases = {"oldest": versions[0], "newest": versions[-1]}
    for name in argv[1:]:
        version = aliases.get(name, name.removeprefix("v"))
        if version not in versions:
            sys.stderr.write(f"kubernetes-validate ships no schemas for {version}\n")
            return 2
        sys.stdout.write(f"{version} {convert(version, out)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
