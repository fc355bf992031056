"""The ``ooda`` command line: the edge where flags, YAML and environment become settings.

Each family of subcommands is one module that adds its own (``add_commands``): the loop's
(``_cli_loop``), failover's, the models', the audit log's and the file-based series tools'.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ooda import _cli_audit, _cli_failover, _cli_loop, _cli_models, _cli_series
from ooda._quiet import silence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ooda",
        description="Keep services inside their SLOs: observe, orient, decide, act and verify.",
    )
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite in mlruns/)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument(
        "--workdir", type=Path, help="where reports and audit logs go (default: .ooda)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for family in (_cli_loop, _cli_failover, _cli_models, _cli_audit, _cli_series):
        family.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ooda`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "models" and args.action != "list" and not args.name:
        parser.error(f"'ooda models {args.action}' needs a model name")
    if (
        args.command == "models"
        and args.action == "promote"
        and not args.version
        and not args.from_challenger
    ):
        parser.error("'ooda models promote' needs a version (or --from-challenger)")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # Third-party chatter (progress bars, deprecations) would bury the scorecard.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        silence()
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
