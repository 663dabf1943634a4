"""The ``sodl`` command line: argument parsing and printing only.

The work is done by functions in ``build``, ``batch``, ``week_check`` and
``gradescope_env`` that tests call directly.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from autograder.errors import UserError

# Imports of the subcommands stay inside them: `sodl grade` of one submission
# is dominated by start-up, and it needs neither nbformat nor the course.


def _weeks(args):
    from autograder import course

    root = course.find_root()
    return root, course.select(root, args.weeks, args.all)


def cmd_list(args) -> int:
    from autograder import course

    root = course.find_root()
    items, broken = [], []
    for w in course.weeks(root):
        try:  # one malformed week must not hide the others
            master, config = w.load()
        except UserError as e:
            broken.append({"week": w.name, "master": str(w.master_path.relative_to(root)), "error": str(e)})
            continue
        items.append({"week": w.name, "title": config.title, "master": str(w.master_path.relative_to(root)),
                      "questions": [{"name": q.name, "points": q.points} for q in master.questions]})
    if args.json:
        print(json.dumps(items + broken, indent=1))
    else:
        for it in items:
            qs = ", ".join(f"{q['name']} ({q['points']:g})" for q in it["questions"])
            print(f"{it['week']}  {it['title']}\n        {it['master']}\n        {qs}")
    for b in broken:
        print(f"sodl list: {b['week']} is broken ({b['master']}): {b['error']}", file=sys.stderr)
    return 1 if broken else 0


def cmd_build(args) -> int:
    from autograder.build import build_week
    from autograder.week_check import WeekChecker, failed_week, format_table
    from autograder.gradescope_env import build_wheel

    masters = [Path(w) for w in args.weeks if w.endswith(".ipynb")]
    if masters:  # `otter assign MASTER DIST` for sodl: any master, any path
        return _build_masters(masters, Path(args.out), not args.no_execute)
    root, weeks = _weeks(args)
    out = Path(args.out)
    wheel = build_wheel(out / "_wheel")
    failed = []
    with WeekChecker(args.jobs, "build") as checker:
        for w in weeks:
            t0 = time.monotonic()
            try:
                paths = build_week(w, out, wheel, execute=not args.no_execute)
            except Exception as e:  # noqa: BLE001 - a line of the report, and the next week
                failed.append(failed_week(w.name, "build", e, f"sodl build {w.name}"))
                print(f"{w.name}: BUILD FAILED ({time.monotonic() - t0:.1f} s): {failed[-1].failure}", flush=True)
                continue
            verdict = ""
            if not args.no_check:  # every mutant must lose points and be diagnosed as itself
                c = checker.check(w)
                verdict = "; checked" if c.ok else f"; CHECK FAILED{': ' + c.failure if c.failure else ''}"
                if not c.ok:
                    failed.append(c)
            print(f"{w.name}: {paths['zip']}  ({time.monotonic() - t0:.1f} s{verdict})", flush=True)
    if failed:
        print(format_table(failed))
        unfinished = [c.week for c in failed if c.failure]
        if len(unfinished) < len(failed):
            print("sodl build: the tests of these weeks cannot tell every mistake apart (see FAIL above)",
                  file=sys.stderr)
        if unfinished:
            print(f"sodl build: not built or not checked: {', '.join(unfinished)} (see FAIL above)", file=sys.stderr)
        return 1
    return 0


def _build_masters(masters: list[Path], out: Path, execute: bool) -> int:
    from autograder.build import build_master
    from autograder.gradescope_env import build_wheel

    wheel = build_wheel(out / "_wheel")
    for m in masters:
        if not m.is_file():
            print(f"sodl build: no such master notebook: {m}", file=sys.stderr)
            return 2
        paths = build_master(m, out, wheel, execute=execute)
        for w in paths["warnings"]:
            print(f"{m.name}: warning: {w}", file=sys.stderr)
        print(f"{m.name}: {paths['zip']}  (student: {paths['student'].parent}, solution: {paths['solution'].parent})")
    return 0


def cmd_grade(args) -> int:
    from autograder.batch import BatchIncomplete, grade_batch

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("sodl grade: --device cuda asked for, but no CUDA GPU is visible to torch", file=sys.stderr)
            return 2
    subs = [Path(s) for s in args.submissions]
    missing = [str(s) for s in subs if not s.exists()]
    if missing:
        print(f"sodl grade: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    from autograder.harness.sandbox_handle import GraderFailure

    shard = None
    if args.shard:
        try:
            k, n = (int(v) for v in args.shard.split("/"))
            assert 1 <= k <= n
        except (ValueError, AssertionError):
            print("sodl grade: --shard takes K/N with 1 <= K <= N, e.g. 3/10", file=sys.stderr)
            return 2
        shard = (k, n)
    try:
        book = grade_batch(Path(args.zip), subs, Path(args.out), jobs=args.jobs or os.cpu_count() or 1,
                           question_timeout=args.timeout, regrade=args.regrade, shard=shard,
                           device=args.device)
    except KeyboardInterrupt:
        print("\nsodl grade: interrupted; finished submissions are saved: run the same command to resume",
              file=sys.stderr)
        sys.stderr.flush()
        os._exit(130)
    except BatchIncomplete as e:  # the others are graded: their gradebook, then what failed
        book, failed = e.book, e
    except GraderFailure as e:
        print(f"sodl grade: {e}", file=sys.stderr)
        return 1
    else:
        failed = None
    print(book.read_text(), end="")
    summary = book.parent / "summary.md"
    if summary.exists():
        print(summary.read_text(), end="")
    print(f"gradebook: {book}  (feedback.md per submission; scores.png and mistakes.png beside it)")
    if failed is not None:
        print(f"sodl grade: {failed}", file=sys.stderr)
        return 1
    return 0


def cmd_gradebook_merge(args) -> int:
    from autograder.batch import merge_gradebooks

    book = merge_gradebooks([Path(d) for d in args.dirs], Path(args.out))
    print(book.read_text(), end="")
    print(f"gradebook: {book}")
    return 0


def cmd_synth(args) -> int:
    from autograder.build import prepare
    from autograder.synthetic import make_class

    root, weeks = _weeks(args)
    if len(weeks) != 1:
        print("sodl synth: name exactly one week", file=sys.stderr)
        return 2
    made = make_class(prepare(weeks[0]), args.n, Path(args.out), seed=args.seed)
    kinds = {}
    for m in made:
        kinds[m.kind] = kinds.get(m.kind, 0) + 1
    print(f"{len(made)} submissions in {args.out}: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    return 0


def cmd_gradescope(args) -> int:
    from autograder.gradescope_env import reproduce

    path = reproduce(Path(args.zip), Path(args.submission), Path(args.root), setup=args.setup,
                     wheelhouse=Path(args.wheelhouse) if args.wheelhouse else None)
    print(path)
    return 0 if path.exists() else 1


def cmd_check(args) -> int:
    from autograder.week_check import WeekChecker, format_table

    masters = [Path(w) for w in args.weeks if w.endswith(".ipynb")]
    if masters:
        return _check_masters(masters)
    _, weeks = _weeks(args)
    checks = []
    with WeekChecker(args.jobs) as checker:
        for w in weeks:
            t0 = time.monotonic()
            c = checker.check(w)
            checks.append(c)
            if c.failure:
                print(f"{w.name}: FAILED ({time.monotonic() - t0:.1f} s): {c.failure}", flush=True)
                continue
            print(f"{w.name}: {'ok' if c.ok else 'FAILED'} ({time.monotonic() - t0:.1f} s; grading the solution: "
                  f"{c.solution_seconds:.1f} s, peak memory {c.sandbox_mb:.0f} MB sandbox + {c.grader_mb:.0f} MB "
                  f"grader)", flush=True)
            for warning in c.gradescope_warnings():
                print(f"{w.name}: warning: {warning}", flush=True)
    print(format_table(checks))
    return 0 if checks and all(c.ok for c in checks) else 1


def _check_masters(masters: list[Path]) -> int:
    from autograder.week_check import check_master

    ok = True
    for m in masters:
        c = check_master(m)
        ok = ok and c.ok
        print(f"{m.name}: solution {c.solution[0]:g}/{c.solution[1]:g}"
              f"{'' if c.ok else ' (NOT full marks)'}, blank {c.blank[0]:g}/{c.blank[1]:g}")
        for f in c.solution_failures:
            print(f"  the solution fails {f}")
        for t in c.blind_tests:
            print(f"  the blank notebook passes {t}: it cannot tell an answer from none")
        print("  no mutants.yml: which wrong answers each test catches is not checked "
              "(add one to prove every test can fail)")
    return 0 if ok else 1


def cmd_demo(args) -> int:
    from autograder import course
    from autograder.demo import run_demo

    return run_demo(course.find_root(), Path(args.out), execute=args.execute)


def _raise_interrupt(*_):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="sodl", description="Build and grade the Science of Deep Learning course.")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("list", help="weeks with title, master notebook and questions")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_list)

    for name, helptext in (("build", "student notebook, answer key, samples and Gradescope zip"),
                           ("check", "prove the tests tell right from wrong (solution, blank, mutants)")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("weeks", nargs="*", metavar="WEEK",
                       help="weekNN, or (build) an otter master notebook MASTER.ipynb at any path")
        s.add_argument("--all", action="store_true")
        if name == "build":
            s.add_argument("--out", default="dist")
            s.add_argument("--no-execute", action="store_true", help="do not execute the answer key")
            s.add_argument("--no-check", action="store_true", help="skip validating the tests and mutants")
            s.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
            s.set_defaults(func=cmd_build)
        else:
            s.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
            s.set_defaults(func=cmd_check)

    s = sub.add_parser("grade", help="grade submissions with a zip; writes results.json and gradebook.csv")
    s.add_argument("--zip", required=True)
    s.add_argument("submissions", nargs="+", metavar="SUBMISSION")
    s.add_argument("--out", default="grades")
    s.add_argument("--jobs", type=int, default=None)
    s.add_argument("--timeout", type=float, default=None, help="seconds per question (default from the zip)")
    s.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    s.add_argument("--regrade", action="store_true", help="grade again what is already graded")
    s.add_argument("--shard", default=None, metavar="K/N", help="grade only the K-th of N deterministic shards")
    s.set_defaults(func=cmd_grade)

    s = sub.add_parser("gradebook", help="gradebook tools")
    gsub = s.add_subparsers(dest="gradebook_cmd", required=True)
    m = gsub.add_parser("merge", help="join the output folders of sharded runs")
    m.add_argument("dirs", nargs="+", metavar="DIR")
    m.add_argument("--out", required=True)
    m.set_defaults(func=cmd_gradebook_merge)

    s = sub.add_parser("synth", help="make a synthetic class of submissions for one week")
    s.add_argument("weeks", nargs=1, metavar="WEEK")
    s.add_argument("--n", type=int, default=50)
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_synth, all=False)

    s = sub.add_parser("gradescope", help="run a zip in a reproduction of Gradescope's /autograder layout")
    s.add_argument("--zip", required=True)
    s.add_argument("--submission", required=True)
    s.add_argument("--root", required=True)
    s.add_argument("--setup", action="store_true", help="run the zip's setup.sh first")
    s.add_argument("--wheelhouse", default=None, help="with --setup: install from these local wheels")
    s.set_defaults(func=cmd_gradescope)

    s = sub.add_parser("demo", help="build every week and grade its sample submissions")
    s.add_argument("--out", default="dist")
    s.add_argument("--execute", action="store_true", help="also execute every answer key (slow)")
    s.set_defaults(func=cmd_demo)

    args = p.parse_args(argv)
    # `kill` and batch schedulers send SIGTERM: stop as cleanly as on Ctrl-C.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return args.func(args)
    except (UserError, FileNotFoundError) as e:  # anything else is a bug: its traceback is shown
        print(f"sodl {args.cmd}: {e}", file=sys.stderr)
        return 2


def run() -> None:
    """The ``sodl`` console command: ``main``, then :func:`exit_now`."""
    from autograder.shutdown import exit_now

    try:
        code = main()
    except SystemExit as e:  # argparse's --help and usage errors (it has printed them)
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    exit_now(code)


if __name__ == "__main__":
    run()
