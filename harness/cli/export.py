"""`harness export RUN_DIR --synthetic OUT`: a run's synthetic sets as a dataset folder that
`datasets.load_dataset` reads, and its trained generators' weights with model cards."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export", help="write a run's synthetic sets (and generator weights) as a Hub dataset",
                              description="Write every synthetic set of RUN_DIR as OUT/data/<dataset>/*.parquet (image, "
                                          "label, attributes, provenance, generator identity) with a dataset card, and "
                                          "each trained generator's state (safetensors weights) under OUT/models/ with "
                                          "a model card. Load it with datasets.load_dataset('OUT', '<dataset>').")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--synthetic", type=Path, required=True, metavar="OUT", help="a new or empty folder")
    p.add_argument("--cache", type=Path,
                   help="the artifact cache the run used (default: the one in its manifest, else HARNESS_CACHE)")
    p.add_argument("--hub", metavar="REPO",
                   help="also push OUT to this dataset repository (needs HF_TOKEN or `huggingface-cli login`)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.hub import export_synthetic, push

    counts = export_synthetic(args.run_dir, args.cache or run_cache(args.run_dir), args.synthetic)
    print(f"wrote {counts['sets']} synthetic sets ({counts['images']} images) and {counts['generators']} "
          f"generators to {args.synthetic}")
    if args.hub:
        print(f"pushed to https://huggingface.co/datasets/{args.hub}: {push(args.synthetic, args.hub)}")
    return 0


def run_cache(run_dir: Path) -> Path:
    """The cache a run wrote its artifacts to, from its manifest."""
    from harness import records

    manifest = Path(run_dir) / records.MANIFEST
    cache = json.loads(manifest.read_text()).get("options", {}).get("cache") if manifest.is_file() else None
    return Path(cache or os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "harness"))
