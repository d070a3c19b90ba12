"""The trainer's settings: what a run is (TrainConfig, saved in checkpoints and compared on resume), zero-shot
evaluation while training, and the command line that builds both."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TrainConfig:
    shards: tuple[str, ...]
    model: str = "metacurate-tiny"
    pretrained: str | None = None
    samples: int = 20_000  # samples seen in all, over all ranks
    batch_size: int = 64  # per rank and micro-batch
    accum: int = 1  # micro-batches per optimizer step
    lr: float = 5e-4
    weight_decay: float = 0.2
    warmup: int = 50  # steps
    workers: int = 2  # DataLoader workers per rank, one data stream each
    shuffle_buffer: int = 1000  # samples per data stream
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    compile: bool = False
    checkpoint_every: int = 100
    log_every: int = 10
    online_balance: bool = False
    seed: int = 0

    def total_steps(self, world_size: int) -> int:
        return max(1, math.ceil(self.samples / (self.batch_size * self.accum * world_size)))


@dataclass(frozen=True)
class ZeroShotEval:
    """Zero-shot accuracy measured while training (as open_clip's --zeroshot-frequency), logged to
    zero_shot.jsonl: every `every` steps (0: only at the end) and after the last step."""

    classes: Path
    images: Path
    every: int = 0

    def due(self, step: int, last_step: int) -> bool:
        return step == last_step or (self.every > 0 and step % self.every == 0)


def plain(value):
    """Tuples as lists, so configs compare and pickle as plain data."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def parse_args(argv=None, description: str | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = TrainConfig(shards=())
    parser.add_argument("--shards", nargs="+", required=True,
                        help="shard folders, brace patterns (DIR/{00000..00009}.tar) or globs")
    parser.add_argument("--out", required=True, help="run folder: checkpoints/, log.jsonl, summary.json")
    parser.add_argument("--model", default=defaults.model, help="open_clip model name")
    parser.add_argument("--pretrained", help="start from open_clip pretrained weights")
    parser.add_argument("--samples", type=int, default=defaults.samples, help="samples seen in all")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="per GPU and micro-batch")
    parser.add_argument("--accum", type=int, default=defaults.accum, help="micro-batches per step")
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="warmup steps")
    parser.add_argument("--workers", type=int, default=defaults.workers, help="data loader workers per GPU")
    parser.add_argument("--shuffle-buffer", type=int, default=defaults.shuffle_buffer, help="samples per stream")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=defaults.precision)
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every, help="steps")
    parser.add_argument("--log-every", type=int, default=defaults.log_every, help="steps")
    parser.add_argument("--online-balance", action="store_true",
                        help="draw each sample with its stored keep_prob every epoch (MetaCLIP online curation)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--resume", nargs="?", const="latest", help="'latest' (default) or a checkpoint path")
    evaluation = parser.add_argument_group("zero-shot evaluation while training (logged to zero_shot.jsonl)")
    evaluation.add_argument("--zero-shot-classes", type=Path, help="class names, one per line")
    evaluation.add_argument("--zero-shot-images", type=Path, help="DIR/<class>/* or a tar archive with that layout")
    evaluation.add_argument("--zero-shot-every", type=int, default=0, help="steps (default: only after the last)")
    args = parser.parse_args(argv)
    if (args.zero_shot_classes is None) != (args.zero_shot_images is None):
        parser.error("--zero-shot-classes and --zero-shot-images go together")
    for name in ("samples", "batch_size", "accum", "checkpoint_every", "log_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    config = TrainConfig(
        shards=tuple(args.shards), model=args.model, pretrained=args.pretrained, samples=args.samples,
        batch_size=args.batch_size, accum=args.accum, lr=args.lr, weight_decay=args.weight_decay,
        warmup=args.warmup, workers=args.workers, shuffle_buffer=args.shuffle_buffer, precision=args.precision,
        compile=args.compile,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every, online_balance=args.online_balance,
        seed=args.seed)
    return config, args


def zero_shot_eval(args: argparse.Namespace) -> ZeroShotEval | None:
    if args.zero_shot_classes is None:
        return None
    return ZeroShotEval(args.zero_shot_classes, args.zero_shot_images, args.zero_shot_every)
