"""`python -m pipeline.experiment`: the closed-loop experiment on a prepared run (pipeline.experiments.study); see its --help."""

from pipeline.experiments.study import main

if __name__ == "__main__":
    main()
