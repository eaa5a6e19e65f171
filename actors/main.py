"""``python -m actors.main …``: Dramatiq's own CLI with JCT's logging from the first line.

Dramatiq's main process would otherwise log in its plain text format; configuring the JSON
handlers first and passing ``--skip-logging`` puts its lines (boot, worker exits, shutdown) in
the same JSON stream and file as everything else.
"""

from __future__ import annotations

import sys

from dramatiq.cli import main as dramatiq_main
from dramatiq.cli import make_argument_parser

from config import load_settings
from errors import ConfigError
from logging_setup import configure_logging
from private_files import restrict_umask


def main(argv: list[str] | None = None) -> int:
    restrict_umask()  # the log file and the spool under JCT_HOME are created owner-only
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"jct: {exc}", file=sys.stderr)
        return 2
    configure_logging("worker", settings.log_file)
    args = make_argument_parser().parse_args([*(argv if argv is not None else sys.argv[1:]),
                                              "--skip-logging"])
    return int(dramatiq_main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
