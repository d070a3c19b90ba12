"""`python -m pipeline.vocabulary`: build the metadata vocabulary from its sources.

The command lives in pipeline.vocab.build; this name is the one users type (see --help)."""

from pipeline.vocab.build import main

if __name__ == "__main__":
    main()
