"""`python -m pipeline.train`: the bundled CLIP trainer.

The command lives in pipeline.clip.training; this name is the one users type (see --help)."""

from pipeline.clip.training.main import main

if __name__ == "__main__":
    main()
