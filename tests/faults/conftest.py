"""Fault suite wiring (make test-faults).

Each fault test records one row per fault kind it tried through the
`fault_report` fixture; scripts/test-faults prints the rows as the summary
table (fault, tries, recovered, rows lost, secrets leaked). The rows go to the
JSON-lines file named by $QUANT_FAULTS_REPORT (default build/faults-report.jsonl)
so the table survives pytest's output capture and can be copied to the README.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REPORT = Path(os.environ.get("QUANT_FAULTS_REPORT", ROOT / "build" / "faults-report.jsonl"))


@pytest.fixture
def fault_report(request):
    """Call fault_report(fault, tries=..., recovered=..., rows_lost=..., secrets_leaked=0, detail="")."""

    def record(fault, *, tries, recovered, rows_lost, secrets_leaked=0, detail=""):
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        row = {"fault": fault, "tries": int(tries), "recovered": int(recovered), "rows_lost": int(rows_lost),
               "secrets_leaked": int(secrets_leaked), "detail": str(detail), "test": request.node.nodeid}
        with REPORT.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")

    return record
