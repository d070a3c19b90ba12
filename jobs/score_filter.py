"""Score the images validation kept with their embeddings (DIR/embed) into DIR/score_filter: CLIP score
(--clip-score-min, --clip-score-top), DataComp's image-based filter (--image-based) and density-based pruning
(--density-prune), each optional, applied in that order. Rejects: low_clip_score, off_target, pruned_dense."""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_score_filter_options], commands.score_filter_command)
