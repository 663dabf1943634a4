"""What a batch of grades tells students and TAs.

Per student: ``feedback.md`` next to ``results.json`` (per question what
passed, what failed, the likely mistake; never hidden expected values).
Per batch: ``gradebook.csv``, ``summary.md``, ``scores.png`` (a histogram
per question) and ``mistakes.png`` (the most common diagnosed mistakes),
plus flags: submissions identical to another, or that tried to tamper.
"""
from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from autograder.atomic import write_atomic
from autograder.gradescope import max_score_of
from autograder.harness.wire import clean_text
from autograder.records import SubmissionResult

SIDECAR = "grading.json"

# Code that has no business in a homework answer. A flag asks a TA to look; it changes no grade.
TAMPER_PATTERNS = {
    "process control": r"\bos\.(_exit|kill|killpg|fork|setsid|execv\w*)\b|\bsubprocess\b|\bsignal\.signal\b",
    "low-level access": r"\bctypes\b|\bgc\.get_objects\b|/proc/|\bsys\.modules\s*\[",
    "grader files": r"results\.json|/autograder\b|sodl_ref|\bautograder\b",
    "patching builtins or libraries": r"\bbuiltins\.\w+\s*=|\b(np|numpy|torch|math)\.\w+(\.\w+)*\s*=(?!=)",
    "forged numeric types": r"__torch_function__|__array_ufunc__|__array_function__|class\s+\w+\((float|int|np\.ndarray|torch\.Tensor)\)",
    "network": r"\bsocket\b|\burllib\b|\brequests\b|\bhttp\.client\b",
}


def tamper_flags(cells: list[str]) -> list[str]:
    """Names of the suspicious patterns found in a submission's graded code."""
    code = "\n".join(cells)
    return [name for name, pattern in TAMPER_PATTERNS.items() if re.search(pattern, code)]


def feedback_markdown(result: SubmissionResult) -> str:
    """Per-student feedback: what passed, what failed and why, a hint.
    Cleaned of lone surrogates and control characters (``wire.clean_text``):
    it is written as strict UTF-8, and its messages quote the student."""
    return clean_text(_feedback(result), 1_000_000)


def _feedback(result: SubmissionResult) -> str:
    lines = [f"# {result.assignment.title or result.assignment.name}: feedback for {result.name}", "",
             f"**Score: {result.score:g} / {result.max_score:g}**", ""]
    for msg in result.messages:
        lines += [f"> {m}" for m in msg.splitlines()] + [""]
    for qr in result.questions:
        mark = "passed" if qr.score >= qr.max_score - 1e-9 else "needs work"
        lines += [f"## {qr.question.name}: {qr.score:g} / {qr.max_score:g} ({mark})", ""]
        if qr.note:
            lines += [f"- {qr.note}"]
        if qr.diagnosis and qr.score < qr.max_score:
            lines += [f"- **Likely mistake:** {qr.diagnosis}"]
        for o in qr.outcomes:
            lines += ["- " + line.replace("\n", " ") for line in o.report_lines()]
        lines.append("")
    return "\n".join(lines)


def sidecar(result: SubmissionResult) -> dict:
    """What the gradebook needs beyond Gradescope's schema."""
    return {"content_hash": result.content_hash, "flags": [clean_text(f, 300) for f in result.flags],
            "max_score": round(result.max_score, 6),
            "mistakes": {q.question.name: q.mistake for q in result.questions if q.mistake},
            "peak_memory_mb": round(result.peak_memory_mb, 1),
            "execution_time": round(result.execution_time, 4), "student_seconds": round(result.student_seconds, 4),
            "protection": result.protection}


@dataclass
class Row:
    """One submission in the gradebook.

    Attributes:
        name: submission name.
        score, max_score: totals.
        questions: score per question.
        mistakes: diagnosed mistake per question (absent when none).
        flags: tamper flags.
        content_hash: for finding identical submissions.
    """

    name: str
    score: float
    max_score: float
    questions: dict[str, float]
    mistakes: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    content_hash: str = ""


def read_row(folder: Path, questions: list[str]) -> Row:
    """A gradebook row from a submission's ``results.json`` and sidecar."""
    data = json.loads((folder / "results.json").read_text())
    extra = json.loads((folder / SIDECAR).read_text()) if (folder / SIDECAR).exists() else {}
    per_q = {q: 0.0 for q in questions}
    for t in data.get("tests", []):
        qname = t["name"].rsplit(" (", 1)[0]
        if qname in per_q:
            per_q[qname] += float(t["score"])
    max_score = float(extra["max_score"]) if type(extra.get("max_score")) in (int, float) else max_score_of(data)
    # the name as shown: a folder name that is not UTF-8 (bytes a student chose
    # for a file's name) made the gradebook unwritable after the whole batch
    return Row(clean_text(folder.name, 200), float(data.get("score", 0.0)), max_score, per_q,
               dict(extra.get("mistakes", {})), list(extra.get("flags", [])), str(extra.get("content_hash", "")))


def identical_groups(rows: list[Row]) -> dict[str, str]:
    """name -> the other names with the same graded code (blank notebooks excepted by the caller)."""
    by_hash: dict[str, list[str]] = {}
    for r in rows:
        if r.content_hash:
            by_hash.setdefault(r.content_hash, []).append(r.name)
    out = {}
    for names in by_hash.values():
        if len(names) > 1:
            for n in names:
                out[n] = " ".join(sorted(set(names) - {n}))
    return out


def write_gradebook(out: Path, rows: list[Row], questions: list[str], blank_hash: str = "") -> Path:
    """``gradebook.csv``: name, score, max score, one column per question,
    then the diagnosed mistake per question, flags and identical submissions."""
    same = identical_groups([r for r in rows if r.content_hash != blank_hash])
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["name", "score", "max_score", *questions, *[f"{q} mistake" for q in questions],
                "flags", "identical_to"])
    for r in sorted(rows, key=lambda r: r.name):
        w.writerow([r.name, f"{r.score:g}", f"{r.max_score:g}", *[f"{r.questions[q]:g}" for q in questions],
                    *[r.mistakes.get(q, "") for q in questions], "; ".join(r.flags), same.get(r.name, "")])
    path = out / "gradebook.csv"
    write_atomic(path, buf.getvalue())
    return path


def import_plotting():
    """matplotlib's pyplot, drawing to files (Agg); imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def summarize(out: Path, rows: list[Row], questions: list[str]) -> str:
    """Write ``summary.md``, ``scores.png`` and ``mistakes.png``; return the summary text."""
    import numpy as np

    plt = import_plotting()

    lines = [f"# Batch summary ({len(rows)} submissions)", "", "| question | mean | median | full marks |",
             "|---|---|---|---|"]
    for q in questions + ["total"]:
        vals = np.array([r.score if q == "total" else r.questions[q] for r in rows] or [0.0])
        top = max([r.max_score for r in rows] or [0.0]) if q == "total" else None
        full = sum(1 for r in rows if (r.score if q == "total" else r.questions[q]) >= (top if top is not None else max(vals)) - 1e-9 and max(vals) > 0)
        lines.append(f"| {q} | {vals.mean():.2f} | {np.median(vals):.2f} | {full} |")
    mistakes = Counter((q, m) for r in rows for q, m in r.mistakes.items())
    lines += ["", "## Most common mistakes", ""]
    lines += [f"- {q}: {m} ({n} submission{'s' if n > 1 else ''})" for (q, m), n in mistakes.most_common(10)] or ["- none diagnosed"]
    flagged = [r for r in rows if r.flags]
    if flagged:
        lines += ["", "## Flagged for a look (not verdicts)", ""]
        lines += [f"- {r.name}: {', '.join(r.flags)}" for r in flagged[:50]]
    text = "\n".join(lines) + "\n"
    write_atomic(out / "summary.md", text)

    cols = len(questions) + 1
    fig, axes = plt.subplots(1, cols, figsize=(2.6 * cols, 2.6), squeeze=False)
    for ax, q in zip(axes[0], questions + ["total"]):
        vals = [r.score if q == "total" else r.questions[q] for r in rows]
        ax.hist(vals, bins=10, color="tab:blue" if q != "total" else "tab:green")
        ax.set_title(q, fontsize=8)
        ax.set_xlabel("points", fontsize=8)
    axes[0][0].set_ylabel("submissions")
    fig.tight_layout()
    fig.savefig(out / "scores.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 0.4 * max(3, len(mistakes.most_common(15))) + 1))
    common = mistakes.most_common(15)[::-1]
    ax.barh([f"{q}: {m}" for (q, m), _ in common], [n for _, n in common], color="tab:red")
    ax.set_xlabel("submissions")
    ax.set_title("Most common diagnosed mistakes")
    fig.tight_layout()
    fig.savefig(out / "mistakes.png", dpi=100)
    plt.close(fig)
    return text
