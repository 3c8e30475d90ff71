"""What a canary leaves to read: one table row per step, a plot of the ramp, a markdown
summary (published as artifacts by the canary flow's report task)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.delivery.results import CanaryResult, StepResult

if TYPE_CHECKING:
    from ratchet.delivery.guardrails import CanaryMonitor


@dataclass(frozen=True)
class CanaryReport:
    title: str
    rows: list[dict[str, Any]]  # step_rows
    plot: Path
    markdown: str


def _rounded(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def step_rows(steps: list[StepResult]) -> list[dict[str, Any]]:
    """One row per step for a table artifact."""
    rows = []
    for s in steps:
        st, cn = s.evidence.get("step", {}), s.evidence.get("canary", {})
        rows.append({
            "share": s.share, "decision": s.decision, "seconds": round(s.seconds, 1),
            "challenger_requests": st.get("challenger_requests"), "champion_requests": st.get("champion_requests"),
            "challenger_error_rate": _rounded(st.get("challenger_error_rate")),
            "champion_error_rate": _rounded(st.get("champion_error_rate")),
            "error_sprt_llr": cn.get("error_sprt_llr"),
            "challenger_p99_ms": _rounded(st.get("challenger_p99_ms"), 2),
            "champion_p99_ms": _rounded(st.get("champion_p99_ms"), 2),
            "prediction_js": _rounded(cn.get("prediction_js")),
            "challenger_accuracy": _rounded(cn.get("challenger_accuracy")),
            "champion_accuracy": _rounded(cn.get("champion_accuracy")),
            "accuracy_p_worse": _rounded(cn.get("accuracy_p_worse")),
            **_mae_columns(cn),
            "breaches": "; ".join(s.breaches),
        })
    return rows


def _mae_columns(cn: dict[str, Any]) -> dict[str, Any]:
    """A regression canary's live errors (present only when the service reported them)."""
    if "challenger_mae" not in cn:
        return {}
    return {
        "challenger_mae": _rounded(cn.get("challenger_mae")),
        "champion_mae": _rounded(cn.get("champion_mae")),
        "mae_p_worse": _rounded(cn.get("mae_p_worse")),
    }


def plot_ramp(steps: list[StepResult], path: Path, title: str) -> Path:
    """Share per step with the challenger's and champion's p99 and error rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = step_rows(steps)
    x = list(range(1, len(rows) + 1))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    palette = {"pass": "tab:green", "insufficient": "tab:gray", "superseded": "tab:blue"}
    colors = [palette.get(r["decision"], "tab:red") for r in rows]
    a1.bar(x, [r["share"] * 100 for r in rows], color=colors)
    a1.set_xlabel("step")
    a1.set_ylabel("challenger share (%)")
    a1.set_ylim(0, 105)
    a1.set_title(title)
    for key, label in (("challenger_p99_ms", "challenger p99"), ("champion_p99_ms", "champion p99")):
        a2.plot(x, [r[key] if r[key] is not None else float("nan") for r in rows], marker="o", label=label)
    a2.set_xlabel("step")
    a2.set_ylabel("p99 latency (ms)")
    a2.legend(fontsize=8)
    a2.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


INCONCLUSIVE = ("**inconclusive**: not enough evidence to decide (no guardrail breached); the champion "
                "stays, the challenger keeps its alias (`canary.on_inconclusive` says what follows)")


def markdown_report(title: str, reason: list[str] | None, rows: list[dict[str, Any]], plot: Path | str,
                    action: str | None = None) -> str:
    """The canary's summary in markdown: why it ended (an ``inconclusive`` end said apart from a
    rollback), a row per step (``step_rows``), the plot. A regression canary shows live MAE where
    a classifier's shows live accuracy."""
    regression = any("challenger_mae" in r for r in rows)
    quality, chall, champ = ("MAE", "challenger_mae", "champion_mae") if regression else (
        "accuracy", "challenger_accuracy", "champion_accuracy")
    lines = [
        f"# {title}",
        "",
        f"reason: {'; '.join(reason or []) or 'every step passed'}",
        "",
        *([INCONCLUSIVE, ""] if action == "inconclusive" else []),
        f"| share | decision | challenger req | errors (chall/champ) | p99 ms (chall/champ) | JS | {quality} (chall/champ) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['share']:.0%} | {r['decision']} | {r['challenger_requests']} | "
            f"{r['challenger_error_rate']} / {r['champion_error_rate']} | "
            f"{r['challenger_p99_ms']} / {r['champion_p99_ms']} | {r['prediction_js']} | "
            f"{r.get(chall)} / {r.get(champ)} |"
        )
    lines += ["", f"plot: `{plot}`"]
    return "\n".join(lines)


def build_report(monitor: CanaryMonitor, steps: list[StepResult], result: CanaryResult,
                 reports_dir: Path) -> CanaryReport:
    """The rows, the ramp's PNG (``reports_dir/canary/<UTC stamp>-v<challenger>.png``) and the
    markdown of a canary that ended with ``result``."""
    title = f"canary v{monitor.challenger} vs v{monitor.champion}: {result.action}"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    png = plot_ramp(steps, Path(reports_dir) / "canary" / f"{stamp}-v{monitor.challenger}.png", title)
    rows = step_rows(steps)
    return CanaryReport(title, rows, png, markdown_report(title, result.reason, rows, png, result.action))
