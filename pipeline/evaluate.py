"""`python -m pipeline.evaluate`: zero-shot and retrieval evaluation of a checkpoint (pipeline.clip.evaluate); see its --help."""

from pipeline.clip.evaluate import main

if __name__ == "__main__":
    main()
