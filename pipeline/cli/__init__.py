"""The command line: option groups, configs built from them, and the commands behind jobs/."""
