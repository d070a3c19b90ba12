"""`python -m pipeline.evaluate`: zero-shot and retrieval evaluation of a checkpoint.

The command lives in pipeline.clip.evaluate; this name is the one users type (see --help)."""

from pipeline.clip.evaluate import main

if __name__ == "__main__":
    main()
