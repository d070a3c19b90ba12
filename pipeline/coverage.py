"""`python -m pipeline.coverage`: the share of a pool's captions a vocabulary matches.

The command lives in pipeline.vocab.coverage; this name is the one users type (see --help)."""

from pipeline.vocab.coverage import main

if __name__ == "__main__":
    main()
