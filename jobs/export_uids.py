"""Write a run's final selection (the uids of its shards) as a DataComp subset file: a sorted numpy array of
two uint64 per 128-bit uid (dtype "u8,u8"), for DataComp's resharder and evaluation."""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_export_options], commands.export_uids_command, run_options=None)
