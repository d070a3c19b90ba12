"""Train an open_clip model on webdataset shards (the same as `python -m pipeline.train`; see its --help)."""

from pipeline.train import main

if __name__ == "__main__":
    main()
