"""``stadyn compare REPORT_A REPORT_B``: A minus B per layer, paired when both read the same pairs.

Thin wrapper over :meth:`hf_stadyn.BiasReport.compare` (docs/method.md §5). Exit status 2 on bad inputs
(a missing file, a file that is not a bias report, reports with no layer in common) and when the pair
sets differ and ``--independent`` is not given.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="compare two bias reports layer by layer (paired when they used the same pairs)",
        description=(
            "Print REPORT_A minus REPORT_B per layer: the share 100 * pi_F of each factor (percentage points) "
            "and the raw scores s_D, s_S, with intervals. When both reports carry the same pair-set "
            "fingerprint (the same pairs) the intervals are a jackknife of the difference over the same "
            "chunks; otherwise the command refuses, unless --independent asks for independent errors. "
            "Layers are matched by name; layers only one report holds are listed."
        ),
    )
    p.add_argument("report_a", metavar="REPORT_A", help="report.json / bias_report.json, or a folder holding one")
    p.add_argument("report_b", metavar="REPORT_B", help="the report to subtract (same forms)")
    p.add_argument(
        "--independent",
        action="store_true",
        help="when the pair sets differ (or a report has no fingerprint), compare with independent errors "
        "instead of refusing",
    )
    p.add_argument("--output", metavar="FILE", default=None, help="also write the comparison as JSON to FILE")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from hf_stadyn._io import atomic_write_text
    from hf_stadyn.report import BiasReport

    out = Path(args.output) if args.output is not None else None
    if out is not None and out.is_dir():
        raise ValueError(f"--output {args.output!r} is a folder; give a file path for the JSON.")
    a = BiasReport.load(args.report_a)
    b = BiasReport.load(args.report_b)
    comparison = a.compare(b, independent=args.independent)
    print("\n".join(comparison.table_lines()))
    if out is not None:
        atomic_write_text(out, comparison.to_json())
        print(f"wrote {out}")
    return 0
