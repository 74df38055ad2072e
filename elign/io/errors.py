"""The error of a malformed input record: it names the file, the record and the problem."""

from __future__ import annotations


class DataFormatError(ValueError):
    """A malformed input record. The message names the file, the record and the problem."""

    def __init__(self, path: str, record: int | str | None, problem: str):
        self.path, self.record, self.problem = str(path), record, problem
        where = f"{path}" if record is None else f"{path}, record {record}"
        super().__init__(f"{where}: {problem}")
