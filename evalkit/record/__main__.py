"""``python -m evalkit.record``: (re)write docs/run-record.schema.json and docs/results-row.schema.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from evalkit.record.model import RunRecord
from evalkit.record.rows import SampleRow


def schemas() -> dict[str, dict[str, object]]:
    return {"run-record.schema.json": RunRecord.model_json_schema(mode="serialization"),
            "results-row.schema.json": SampleRow.model_json_schema(mode="serialization")}


def main(docs: Path) -> None:
    for name, schema in schemas().items():
        (docs / name).write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {docs / name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs"))
