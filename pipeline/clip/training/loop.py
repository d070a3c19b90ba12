"""Train an open_clip model on webdataset shards: the bundled CLIP trainer.

Contrastive loss (open_clip's ClipLoss), AdamW with warmup + cosine, bf16 autocast and TF32 on CUDA, optional
torch.compile, gradient accumulation with open_clip's feature cache (the loss sees the whole accumulated
batch), JSON-lines log and progress bar, checkpoints every N steps, `--resume latest` continues at the same
step with the same optimizer, schedule and data position. `--online-balance` draws every sample with its
stored keep probability each epoch (MetaCLIP's online curation). A finished run rerun is skipped.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.clip.training.distributed import gather, setup_distributed
from pipeline.clip.training.options import TrainConfig, ZeroShotEval, plain
from pipeline.errors import UserInputError
from pipeline.run.stages import STAGES

TRAIN = STAGES["train"]


@dataclass
class Progress:
    """What the run has done so far; saved in checkpoints and the summary."""
    step: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    positions: dict[int, list[int]] = field(default_factory=dict)  # data stream -> [epoch, raw samples taken]
    train_seconds: float = 0.0
    data_wait_seconds: float = 0.0

    def add_skipped(self, counts: dict[str, int]) -> None:
        for reason, count in counts.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + count


class Trainer:
    def __init__(self, config: TrainConfig, out: Path, resume: Path | None = None,
                 zero_shot: ZeroShotEval | None = None):
        from pipeline.clip.torch_compat import prepare_torchvision

        prepare_torchvision()
        import torch
        from open_clip.loss import ClipLoss

        from pipeline.clip.models import load_model
        from pipeline.clip.training.checkpoints import load_checkpoint
        from pipeline.clip.training.data import expand_shards
        from pipeline.clip.training.optim import optimizer_and_schedule

        self.config, self.out = config, Path(out)
        self.distributed = setup_distributed()
        self.zero_shot, self.zero_shot_set = zero_shot, None
        if zero_shot is not None and self.distributed.main:  # read once, before training, so bad paths fail early
            from pipeline.clip.evaluate import read_classes, read_labelled

            classes = read_classes(zero_shot.classes)
            self.zero_shot_set = (classes, read_labelled(zero_shot.images, classes))
        self.shards = expand_shards(config.shards)
        self.cuda = self.distributed.device.startswith("cuda")
        if self.cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.bf16 = config.precision == "bf16" or (config.precision == "auto" and self.cuda)
        torch.manual_seed(config.seed + self.distributed.rank)
        loaded = load_model(config.model, config.pretrained, device=self.distributed.device, seed=config.seed)
        self.model, self.loaded = loaded.model, loaded
        self.total_steps = config.total_steps(self.distributed.world_size)
        self.optimizer, self.scheduler = optimizer_and_schedule(
            self.model, config.lr, config.weight_decay, min(config.warmup, self.total_steps), self.total_steps)
        self.progress = Progress()
        if resume is not None:
            self._restore(load_checkpoint(resume), resume)
        self.forward = self.model
        if self.distributed.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.forward = DistributedDataParallel(self.model, device_ids=[self.distributed.device] if self.cuda
                                                   else None)
        if config.compile:
            self.forward = torch.compile(self.forward)
        self.loss = ClipLoss(local_loss=True, gather_with_grad=True, cache_labels=True,
                             rank=self.distributed.rank, world_size=self.distributed.world_size)

    def _restore(self, state: dict, path: Path) -> None:
        import torch

        saved = state["config"]
        changed = sorted(key for key, value in asdict(self.config).items()
                         if key in saved and plain(saved[key]) != plain(value)
                         and key not in ("checkpoint_every", "log_every", "compile"))
        if changed:
            raise UserInputError(f"{path}: the run was started with other settings ({', '.join(changed)}); "
                                 f"resume with the same ones or train into another --out")
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        positions = state["data_position"]
        if positions["world_size"] != self.distributed.world_size:
            raise UserInputError(f"{path}: saved with {positions['world_size']} ranks, resumed with "
                                 f"{self.distributed.world_size}")
        self.progress = Progress(step=state["step"], skipped=dict(state["skipped"]),
                                 positions={int(stream): list(where) for stream, where in positions["streams"].items()},
                                 train_seconds=state["train_seconds"], data_wait_seconds=state["data_wait_seconds"])
        torch.set_rng_state(state["torch_rng"])

    def _loader(self):
        import torch
        from torch.utils.data import DataLoader

        from pipeline.clip.training.data import ShardStream, StreamPosition

        streams = max(1, self.config.workers)
        dataset = ShardStream(self.shards, self.loaded.preprocess_train, self.loaded.tokenizer, self.config.batch_size,
                              self.config.seed, self.distributed.rank, self.distributed.world_size, streams,
                              self.config.online_balance,
                              {stream: StreamPosition(*where) for stream, where in self.progress.positions.items()},
                              self.config.shuffle_buffer)
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.progress.step)
        return DataLoader(dataset, batch_size=None, num_workers=self.config.workers, pin_memory=self.cuda,
                          prefetch_factor=4 if self.config.workers else None, generator=generator)

    def _autocast(self):
        import torch

        if not self.bf16:
            return nullcontext()
        return torch.autocast("cuda" if self.cuda else "cpu", dtype=torch.bfloat16)

    def _step(self, micro_batches: list) -> float:
        """One optimizer step over the micro-batches; returns the contrastive loss of the whole batch."""
        import torch

        moved = [(images.to(self.distributed.device, non_blocking=True),
                  texts.to(self.distributed.device, non_blocking=True)) for images, texts, _ in micro_batches]
        self.optimizer.zero_grad(set_to_none=True)
        if len(moved) == 1:
            with self._autocast():
                image_features, text_features, logit_scale = self.forward(*moved[0])[:3]
                loss = self.loss(image_features, text_features, logit_scale)
            loss.backward()
        else:  # open_clip's accumulation: features of the other micro-batches cached, one slice with gradients
            with torch.no_grad(), self._autocast():
                cached = [self.forward(images, texts)[:2] for images, texts in moved]
            for index, (images, texts) in enumerate(moved):
                last = index == len(moved) - 1
                sync = nullcontext() if last or self.forward is self.model else self.forward.no_sync()
                with sync, self._autocast():
                    image_features, text_features, logit_scale = self.forward(images, texts)[:3]
                    all_images = torch.cat([pair[0] for pair in cached[:index]] + [image_features]
                                           + [pair[0] for pair in cached[index + 1:]])
                    all_texts = torch.cat([pair[1] for pair in cached[:index]] + [text_features]
                                          + [pair[1] for pair in cached[index + 1:]])
                    loss = self.loss(all_images, all_texts, logit_scale)
                loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        with torch.no_grad():
            self.model.logit_scale.clamp_(0, math.log(100))
        return float(loss.detach())

    def _checkpoint(self) -> Path | None:
        import torch

        from pipeline.clip.training.checkpoints import save_checkpoint

        positions = gather(self.distributed, self.progress.positions)
        skipped = gather(self.distributed, self.progress.skipped)
        if not self.distributed.main:
            return None
        streams = {str(stream): where for rank_positions in positions for stream, where in rank_positions.items()}
        total_skipped = dict(sum((Counter(counts) for counts in skipped), Counter()))
        return save_checkpoint(self.out / TRAIN.files["checkpoints"], self.progress.step, {
            "step": self.progress.step, "samples_seen": self.samples_seen(),
            "state_dict": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "config": plain(asdict(self.config)),
            "data_position": {"world_size": self.distributed.world_size, "streams": streams},
            "skipped": total_skipped, "train_seconds": self.progress.train_seconds,
            "data_wait_seconds": self.progress.data_wait_seconds, "torch_rng": torch.get_rng_state()})

    def _evaluate_zero_shot(self) -> None:
        """Rank 0 measures; the other ranks wait for it at their next collective."""
        from pipeline.clip.evaluate import zero_shot_on
        from pipeline.semantic.embedding import as_embedder

        if self.zero_shot_set is None:
            return
        self.model.eval()
        try:
            result = zero_shot_on(as_embedder(self.loaded), *self.zero_shot_set)
        finally:
            self.model.train()
        record = {"step": self.progress.step, "samples_seen": self.samples_seen(),
                  **{key: round(result[key], 5) for key in ("top1", "top5", "mean_per_class")}}
        with open(self.out / TRAIN.files["zero_shot_log"], "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")

    def samples_seen(self) -> int:
        return self.progress.step * self.config.batch_size * self.config.accum * self.distributed.world_size

    def run(self) -> dict:
        from tqdm import tqdm

        config, progress = self.config, self.progress
        self.out.mkdir(parents=True, exist_ok=True)
        self.model.train()
        batches = iter(self._loader())
        bar = tqdm(total=self.total_steps, initial=progress.step, disable=None if self.distributed.main else True,
                   unit="step", dynamic_ncols=True)
        log = open(self.out / TRAIN.files["log"], "a", encoding="utf-8") if self.distributed.main else None
        window_started, window_samples, loss, path = time.perf_counter(), 0, float("nan"), None
        try:
            while progress.step < self.total_steps:
                started = time.perf_counter()
                micro_batches = [next(batches) for _ in range(config.accum)]
                waited = time.perf_counter() - started
                loss = self._step(micro_batches)
                for _, _, info in micro_batches:
                    progress.positions[info.stream] = [info.position.epoch, info.position.taken]
                    progress.add_skipped(info.skipped)
                progress.step += 1
                progress.train_seconds += time.perf_counter() - started
                progress.data_wait_seconds += waited
                window_samples += config.batch_size * config.accum * self.distributed.world_size
                if progress.step % config.log_every == 0 or progress.step == self.total_steps:
                    rate = window_samples / (time.perf_counter() - window_started)
                    record = {"step": progress.step, "samples_seen": self.samples_seen(), "loss": round(loss, 5),
                              "lr": self.scheduler.get_last_lr()[0],
                              "logit_scale": round(float(self.model.logit_scale.detach().exp()), 3),
                              "samples_per_s": round(rate, 1), "data_wait_fraction":
                              round(progress.data_wait_seconds / max(progress.train_seconds, 1e-9), 4),
                              "skipped": dict(progress.skipped)}
                    if log:
                        log.write(json.dumps(record) + "\n")
                        log.flush()
                    bar.set_postfix(loss=f"{loss:.3f}", lr=f"{record['lr']:.2e}", samples_s=f"{rate:.0f}")
                    window_started, window_samples = time.perf_counter(), 0
                bar.update(1)
                if progress.step % config.checkpoint_every == 0 or progress.step == self.total_steps:
                    path = self._checkpoint()
                if self.zero_shot is not None and self.zero_shot.due(progress.step, self.total_steps):
                    self._evaluate_zero_shot()
        finally:
            bar.close()
            if log:
                log.close()
        return self._finish(loss, path)

    def _finish(self, loss: float, checkpoint: Path | None) -> dict:
        summary = {"steps": self.progress.step, "samples_seen": self.samples_seen(), "final_loss": loss,
                   "train_seconds": round(self.progress.train_seconds, 3),
                   "samples_per_s": round(self.samples_seen() / max(self.progress.train_seconds, 1e-9), 1),
                   "data_wait_fraction": round(self.progress.data_wait_seconds / max(self.progress.train_seconds,
                                                                                     1e-9), 4),
                   "skipped": dict(self.progress.skipped), "device": self.distributed.device,
                   "precision": "bf16" if self.bf16 else "fp32", "world_size": self.distributed.world_size,
                   "checkpoint": str(checkpoint) if checkpoint else None, "config": plain(asdict(self.config))}
        if self.distributed.main:
            partial = self.out / (TRAIN.files["summary"] + ".partial")
            partial.write_text(json.dumps(summary, indent=2) + "\n")
            os.replace(partial, self.out / TRAIN.files["summary"])
        return summary


def train(config: TrainConfig, out: Path, resume: str | None = None, zero_shot: ZeroShotEval | None = None) -> dict:
    """Train, or resume with `resume` ('latest' or a checkpoint path); a finished run with the same config is
    returned as it is."""
    from pipeline.clip.training.checkpoints import latest_checkpoint

    out = Path(out)
    finished = out / TRAIN.files["summary"]
    if finished.is_file():
        summary = json.loads(finished.read_text())
        if summary["config"] == plain(asdict(config)):
            return summary
        raise UserInputError(f"{out}: holds a finished run with other settings; train into another --out")
    path = None
    if resume == "latest":
        path = latest_checkpoint(out / TRAIN.files["checkpoints"])
    elif resume is not None:
        path = Path(resume)
        if not path.is_file():
            raise UserInputError(f"{resume}: checkpoint not found")
    elif latest_checkpoint(out / TRAIN.files["checkpoints"]) is not None:
        raise UserInputError(f"{out}: has checkpoints of an unfinished run; add --resume latest, or train into "
                             f"another --out")
    return Trainer(config, out, path, zero_shot).run()
