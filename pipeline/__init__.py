"""metacurate: MetaCLIP-style curation of web image-text pools, from a raw pool to a trained CLIP model.

Rooms by role: `text` (pool -> ingest -> match -> count -> balance), `vocab` (the metadata vocabulary),
`image` (download, validate, shards), `semantic` (embeddings, SemDeDup), `clip` (models, trainer,
evaluation), `run` (the run directory and its stage registry), `spark` (the only Spark code, one binding
per stage), `cli` (options and the commands behind jobs/), `report`, `experiments` (the closed loop and
the offline demo). The cores know nothing of Spark, the command line or the experiments.
"""

from pathlib import Path

# The checkout the package runs from: the shipped vocabulary, sample pool and demo images are found here.
REPO = Path(__file__).resolve().parent.parent
