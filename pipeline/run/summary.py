"""A short human summary of a run's stage manifests."""

from __future__ import annotations

from pathlib import Path

from pipeline.run.stages import STAGES


def format_summary(run_dir: Path, manifests: dict[str, dict]) -> str:
    lines = [f"run: {Path(run_dir).resolve()}"]
    for stage, manifest in manifests.items():
        rejected = manifest.get("rejected") or {}
        reasons = ", ".join(f"{reason} {count}" for reason, count in rejected.items()) or "none"
        state = "skipped (current)" if manifest.get("skipped") else f"{manifest['wall_seconds']:.1f}s"
        lines.append(f"  {stage:<13} in {manifest['rows_in']:>9,}  out {manifest['rows_out']:>9,}  "
                     f"rejected: {reasons}  [{state}]")
        if manifest.get("auto"):  # what the dedup stage's --eps auto chose, and why
            lines.append(f"  {'':<13} {manifest['auto']['says']}")
        if manifest.get("note"):  # a stage's one-line word on an outcome the user must see
            lines.append(f"  {'':<13} {manifest['note']}")
    selection = manifests.get(STAGES["balance"].folder)
    if selection:
        lines.append(f"  t = {selection['t']:.6g}, expected size {selection['expected_size']:,.1f}, "
                     f"selected {selection['selected']:,}")
        lines += _per_language(selection.get("languages") or {})
        lines.append(f"  selection: {STAGES['balance'].path(run_dir).resolve()}")
    return "\n".join(lines)


def _per_language(languages: dict[str, dict]) -> list[str]:
    """Worldwide runs: each language's t (how it was set), its tail share at that t, its pool and curated size."""
    if not languages:
        return []
    lines = [f"  {'language':<9} {'t':>10} {'how':<8} {'tail share':>10} {'pool':>9} {'curated':>9}"]
    for language, figures in sorted(languages.items(), key=lambda item: -item[1].get("pool", 0)):
        lines.append(f"  {language:<9} {figures['t']:>10.6g} {figures['how']:<8} {figures['tail_share']:>10.1%} "
                     f"{figures.get('pool', 0):>9,} {figures.get('curated', 0):>9,}")
    return lines
