"""Write `configuration.conf` from `terraform output -json`.

The Terraform output ``configuration`` maps INI sections to the keys this deployment sets (the
bucket, the dataset, the lake and warehouse URLs, the Prefect block names). This script sets those
keys and leaves every other key and comment as it was: it edits ``--output`` when that file exists
and otherwise starts from ``configuration.conf.example``. The VM's startup script runs it too, on
the same JSON, so a laptop and the VM get the same file.

Example (from the repository root, after ``terraform -chdir=terraform apply``)::

    python terraform/write_config.py
    python terraform/write_config.py --outputs recorded.json --output /tmp/configuration.conf
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "configuration.conf.example"

_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*[=:]")

Settings = Mapping[str, Mapping[str, str]]


def configuration_from_outputs(outputs: Mapping[str, object]) -> dict[str, dict[str, str]]:
    """The ``configuration`` output's value, as section → key → string.

    Raises:
        SystemExit: the outputs have no ``configuration`` (not applied yet, or an older module).
    """
    try:
        value = outputs["configuration"]["value"]  # type: ignore[index]
    except (KeyError, TypeError):
        raise SystemExit(
            "terraform output has no 'configuration': run `terraform -chdir=terraform apply` "
            "first (or pass the JSON of `terraform output -json` with --outputs)."
        ) from None
    return {section: {k: str(v) for k, v in keys.items()} for section, keys in value.items()}


def set_keys(text: str, settings: Settings) -> str:
    """Set ``settings`` in INI ``text``, keeping every other line, comments included.

    A key already in its section is replaced in place; a missing key goes at the end of its
    section; a missing section is appended.

    Example:
        >>> set_keys("[a]\\n# note\\nx = 1\\n", {"a": {"x": "2", "y": "3"}})
        '[a]\\n# note\\nx = 2\\ny = 3\\n'
    """
    pending = {section: dict(keys) for section, keys in settings.items()}
    out: list[str] = []
    section: str | None = None

    def close(name: str | None) -> None:
        # new keys go after the section's last key, before the blank lines that end it
        blanks = 0
        while out and not out[-1].strip():
            out.pop()
            blanks += 1
        out.extend(f"{key} = {value}" for key, value in pending.pop(name, {}).items())
        out.extend([""] * blanks)

    for line in text.splitlines():
        header = _SECTION.match(line)
        if header:
            close(section)
            section = header.group(1).strip()
        elif section in pending:
            key = _KEY.match(line)
            if key and key.group(1) in pending[section]:
                line = f"{key.group(1)} = {pending[section].pop(key.group(1))}"
        out.append(line)
    close(section)
    for name, keys in pending.items():
        out.extend(["", f"[{name}]", *(f"{key} = {value}" for key, value in keys.items())])
    return "\n".join(out) + "\n"


def terraform_outputs(chdir: Path) -> dict[str, object]:
    """Run ``terraform output -json`` in ``chdir``."""
    try:
        done = subprocess.run(
            ["terraform", f"-chdir={chdir}", "output", "-json"],
            check=True,
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        raise SystemExit("terraform is not on PATH: install it, or pass --outputs FILE.") from None
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"terraform output failed: {exc.stderr.strip()}") from None
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--outputs",
        help="a file holding `terraform output -json` ('-' for stdin); default: run terraform",
    )
    parser.add_argument(
        "--chdir",
        type=Path,
        default=ROOT / "terraform",
        help="the Terraform directory when running terraform (default: %(default)s)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("configuration.conf"),
        help="the file to write or update (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    if args.outputs == "-":
        outputs = json.load(sys.stdin)
    elif args.outputs:
        outputs = json.loads(Path(args.outputs).read_text(encoding="utf-8"))
    else:
        outputs = terraform_outputs(args.chdir)
    settings = configuration_from_outputs(outputs)
    base = args.output if args.output.exists() else EXAMPLE
    args.output.write_text(set_keys(base.read_text(encoding="utf-8"), settings), encoding="utf-8")
    keys = ", ".join(f"[{s}] {k}" for s, kv in settings.items() for k in kv)
    print(f"{args.output}: set {keys} (from {base.name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
