"""Input errors: stop with file, record and problem, or skip and count (``on_error: skip``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from elign.io.errors import DataFormatError


@dataclass
class ErrorPolicy:
    """Decides what happens to a bad record: raise (default) or skip and count it.

    ``kind`` is a short reason class (e.g. ``"unknown_element"``) used for the counts in stats.json.
    """

    on_error: Literal["raise", "skip"] = "raise"
    counts: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    max_examples: int = 20

    def bad_record(self, path: str, record: int | str | None, kind: str, problem: str) -> None:
        err = DataFormatError(path, record, problem)
        if self.on_error == "raise":
            raise err
        self.counts[kind] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(str(err))

    def summary(self) -> dict:
        return {"count": int(sum(self.counts.values())), "by_reason": dict(self.counts), "examples": self.examples}
