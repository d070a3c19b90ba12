"""python -m pipeline.report --run DIR [--out DIR/report] [--train TRAIN_DIR ...]: a run's HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv=None) -> None:
    from pipeline.errors import run_job

    parser = argparse.ArgumentParser(prog="python -m pipeline.report", description=__doc__)
    parser.add_argument("--run", required=True, type=Path, help="run directory (any stages present)")
    parser.add_argument("--out", type=Path, help="report folder (default RUN/report)")
    parser.add_argument("--train", type=Path, action="append", default=[],
                        help="a pipeline.train output folder to attach (RUN/train and RUN/train/* are found alone)")
    parser.add_argument("--examples", type=int, default=12, help="entries, captions and duplicate pairs shown")
    parser.add_argument("--seed", type=int, default=0, help="seed of the tail-entry sample")
    args = parser.parse_args(argv)

    def command() -> None:
        from pipeline.report.build import write_report

        print(f"report: {write_report(args.run, args.out, args.train, args.examples, args.seed).resolve()}")

    run_job(command)


if __name__ == "__main__":
    main()
