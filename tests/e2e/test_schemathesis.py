"""schemathesis against the running system with all its checks: no 5xx, every status and
response as documented, schema-valid requests accepted and schema-violating ones refused, 405
(with ``Allow``) for a method a path does not list. The system gets a stack of its own: the run
enqueues hundreds of tasks, some sleeping for hours."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.stack import start_stack

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = "1"  # the same cases each run; a finding reproduces with `st replay <id>` from the output
# One worker: with two, hypothesis describes its strategies by parsing source in two threads at
# once, which CPython 3.11's ast module does not survive ("AST constructor recursion depth
# mismatch", a SystemError reported as a schemathesis runtime error).


def test_schemathesis_finds_nothing(tmp_path: Path, artifacts_dir: Path) -> None:
    stack = start_stack(tmp_path / "home")
    try:
        run = subprocess.run(
            [SCHEMATHESIS, "--config-file", str(CONFIG), "--no-color", "run",
             f"{stack.api_url}/openapi.json", "--checks", "all", "--workers", "1",
             "--max-examples", "10", "--seed", SEED, "--generation-database", "none",
             "--request-timeout", "30"],
            capture_output=True, text=True, timeout=240, check=False, cwd=tmp_path)
    finally:
        stopped = stack.stop()
    output = artifacts_dir / "schemathesis.txt"
    output.write_text(run.stdout + run.stderr, encoding="utf-8")
    summary = run.stdout[run.stdout.find("=== FAILURES") if "=== FAILURES" in run.stdout else -3000:]
    assert run.returncode == 0, f"schemathesis found problems (all output: {output}):\n{summary[:6000]}"
    assert stopped == 0, f"jct up did not stop cleanly; see {stack.home / 'jct-up.out'}"
