"""The trainer's command: `python -m pipeline.train` (or torchrun ... -m pipeline.train for several GPUs).

    python -m pipeline.train --shards DIR_OR_PATTERN --out DIR [--model NAME] [--samples N] [--batch-size B]
    torchrun --nproc_per_node N -m pipeline.train ...        (several GPUs: DDP, features gathered for the loss)

Contrastive loss (open_clip's ClipLoss), AdamW with warmup + cosine, bf16 autocast and TF32 on CUDA, optional
torch.compile, gradient accumulation with open_clip's feature cache (the loss sees the whole accumulated
batch), JSON-lines log and progress bar, checkpoints every N steps, `--resume latest` continues at the same
step with the same optimizer, schedule and data position. `--online-balance` draws every sample with its
stored keep probability each epoch (MetaCLIP's online curation). A finished run rerun is skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.clip.training.loop import train
from pipeline.clip.training.options import parse_args, zero_shot_eval
from pipeline.errors import run_job


def main(argv=None) -> None:
    config, args = parse_args(argv, __doc__)

    def command() -> None:
        summary = train(config, Path(args.out), args.resume, zero_shot_eval(args))
        if int(os.environ.get("RANK", "0")) != 0:
            return  # under torchrun, rank 0 speaks for all
        print(f"trained {summary['steps']} steps, {summary['samples_seen']:,} samples at "
              f"{summary['samples_per_s']:,.0f} samples/s on {summary['device']}; final loss "
              f"{summary['final_loss']:.4f}; skipped {summary['skipped'] or 'none'}")
        print(f"checkpoint: {summary['checkpoint']}")

    run_job(command)
