"""One scenario's outcome, and the table the drill prints for all of them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from drills.hosts.verdict import Verdict

COLUMNS = ("scenario", "tasks", "done once", "duplicates", "max time to recover", "result")


@dataclass
class ScenarioResult:
    name: str
    tasks: int = 0
    done_once: int = 0
    duplicates: int = 0
    recover_s: float | None = None  # what "recover" means is in each scenario's docstring
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # figures and evidence, for the report
    facts: dict[str, Any] = field(default_factory=dict)  # the same, for tests to assert on

    @property
    def passed(self) -> bool:
        return not self.problems

    def add_verdict(self, found: Verdict) -> None:
        self.tasks += found.tasks
        self.done_once += found.done_once
        self.duplicates += found.duplicates
        self.problems.extend(found.problems())

    def recovered(self, seconds: float | None) -> None:
        if seconds is not None:
            self.recover_s = max(self.recover_s or 0.0, seconds)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def table(results: list[ScenarioResult]) -> str:
    rows = [COLUMNS] + [
        (r.name, str(r.tasks), str(r.done_once), str(r.duplicates),
         "-" if r.recover_s is None else f"{r.recover_s:.1f} s", "pass" if r.passed else "FAIL")
        for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in rows]
    lines.insert(1, "-|-".join("-" * width for width in widths))
    return "\n".join(lines)
