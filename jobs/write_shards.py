"""Write the samples of DIR/rebalance as webdataset shards, with a parquet index and a stats json."""

from pipeline import cli
from pipeline.spark import jobs

if __name__ == "__main__":
    cli.job_main(__doc__, [cli.add_shard_options], jobs.write_shards_command, run_options=None)
