"""`python -m pipeline.experiment`: the closed-loop experiment on a prepared run.

The command lives in pipeline.experiments.study; this name is the one users type (see --help)."""

from pipeline.experiments.study import main

if __name__ == "__main__":
    main()
