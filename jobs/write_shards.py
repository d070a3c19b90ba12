"""Write the samples of DIR/rebalance as webdataset shards, with a parquet index and a stats json."""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_shard_options], commands.write_shards_command, run_options=None)
