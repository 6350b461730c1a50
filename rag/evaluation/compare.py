"""Compare two eval runs: every metric side by side with its difference, and the questions whose outcome
changed. Works from the files a run wrote, so a run from last week compares with one from today."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import ConfigError, NotFoundError
from rag.evaluation import metrics


@dataclass(frozen=True)
class MetricDiff:
    key: str
    label: str
    fmt: str
    a: float | int | None
    b: float | int | None
    # Difference b - a per language present in both runs; "overall" included.
    diffs: dict[str, float | None]

    @property
    def diff(self) -> float | None:
        return self.diffs.get("overall")


@dataclass(frozen=True)
class OutcomeChange:
    id: str
    lang: str
    check: str
    a: bool
    b: bool

    @property
    def improved(self) -> bool:
        return self.b and not self.a


@dataclass
class Comparison:
    a: Path
    b: Path
    langs: list[str]
    metrics: list[MetricDiff]
    changes: list[OutcomeChange]
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load_run(out_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """summary.json and records.jsonl of a run directory."""
    summary_path, records_path = out_dir / "summary.json", out_dir / "records.jsonl"
    if not summary_path.is_file() or not records_path.is_file():
        raise NotFoundError(f"{out_dir} is not an eval run (no summary.json / records.jsonl)",
                            "pass the --out folders of two `rag eval` runs")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        records = [json.loads(line) for line in records_path.read_text(encoding="utf-8").splitlines() if line]
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the eval run in {out_dir} ({exc})", "run `rag eval` again") from exc
    return summary, records


def compare_runs(dir_a: Path, dir_b: Path) -> Comparison:
    summary_a, records_a = load_run(dir_a)
    summary_b, records_b = load_run(dir_b)
    langs = [lang for lang in summary_a["by_lang"] if lang in summary_b["by_lang"]]
    groups_a = {"overall": summary_a["overall"], **summary_a["by_lang"]}
    groups_b = {"overall": summary_b["overall"], **summary_b["by_lang"]}
    rows = []
    for key, label, fmt in metrics.METRICS:
        a, b = summary_a["overall"].get(key), summary_b["overall"].get(key)
        if a is None and b is None:
            continue
        diffs = {name: _minus(groups_b[name].get(key), groups_a[name].get(key))
                 for name in ["overall", *langs]}
        rows.append(MetricDiff(key=key, label=label, fmt=fmt, a=a, b=b, diffs=diffs))
    by_id_b = {r["id"]: r for r in records_b}
    changes = []
    for record in records_a:
        other = by_id_b.get(record["id"])
        if other is None:
            continue
        for check, before in record["passed"].items():
            after = other["passed"].get(check)
            # A check that one run could not make (retrieval-only has no answer) is not a change.
            if before is not None and after is not None and before != after:
                changes.append(OutcomeChange(id=record["id"], lang=record["lang"], check=check,
                                             a=before, b=after))
    ids_a = [r["id"] for r in records_a]
    return Comparison(
        a=dir_a, b=dir_b, langs=langs, metrics=rows, changes=changes,
        only_a=[i for i in ids_a if i not in by_id_b],
        only_b=[r["id"] for r in records_b if r["id"] not in set(ids_a)],
        notes=_notes(summary_a["run"], summary_b["run"]),
    )


def _minus(b: float | int | None, a: float | int | None) -> float | None:
    return None if a is None or b is None else float(b) - float(a)


def _notes(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Differences in how the runs were made, which explain metric changes as much as the code does."""
    notes = []
    for key in ("questions_file", "top_k", "retrieval_only", "models", "settings"):
        if a.get(key) != b.get(key):
            notes.append(f"{key} differs: {a.get(key)} → {b.get(key)}")
    return notes


def format_diff(diff: float | None, fmt: str) -> str:
    """Signed difference in the metric's own unit (percentage points for shares)."""
    return metrics.format_value(diff, fmt, signed=True)


def is_better(key: str, diff: float | None) -> bool | None:
    """Whether a difference is an improvement (None when there is none or it has no direction)."""
    if not diff or key == "n" or key.endswith("tokens"):
        return None
    return diff < 0 if key in metrics.LOWER_IS_BETTER else diff > 0
