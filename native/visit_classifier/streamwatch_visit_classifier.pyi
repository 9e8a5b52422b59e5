"""Type stub of the compiled module (src/lib.rs)."""

VALID: int
EMPTY: int
INVALID: int
DEFER: int

ColumnBuffers = tuple[bytes, bytes, bytes | None]

class Classifier:
    def __init__(self, leaves: list[tuple[str, str]], required: list[str], id_field: str) -> None: ...
    def classify(
        self, values: list[bytes], keep_columns: bool
    ) -> tuple[bytes, list[int], int, int, list[ColumnBuffers] | None]: ...
