"""Sharing on the Hugging Face Hub: a published leaderboard as a dataset repository, a run's
synthetic sets as a dataset that `datasets.load_dataset` reads, and generator weights with a
model card.

- `hub_folder(run_dir, out_dir)` writes the published leaderboard folder (tables, ranking,
  manifest, records; `harness.publish`) plus `records.parquet` (one row per record: the labels,
  every metric as a column, the nested fields as JSON text) and a dataset card (README.md with
  YAML metadata). `push(folder, repo)` uploads it with `huggingface_hub.upload_folder`.
- `export_synthetic(run_dir, cache_dir, out_dir)` writes each synthetic set of the run as
  `data/<dataset>/*.parquet` (image as PNG, label, attributes, provenance, generator identity),
  one dataset config per dataset, with a dataset card; and each trained generator's saved state
  (its `*.safetensors` weights and JSON) under `models/<generator>-<key>/` with a model card.

Pushing needs a Hub token with write access: `HF_TOKEN` in the environment, or a prior
`huggingface-cli login`. Nothing else here touches the network.
"""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness import records
from harness.cache import Cache, file_sha256
from harness.contracts import ConfigError
from harness.data import ImageSet
from harness.publish import publish, write_text_atomic

RECORDS_PARQUET = "records.parquet"
#: the parts of a record's cell_id, each its own column (the other nested fields become JSON text)
LABEL_COLUMNS = ("dataset", "scenario", "generator", "sampling", "classifier")


# -- the published leaderboard -------------------------------------------------------------
def hub_folder(run_dir: Path, out_dir: Path, summary: pd.DataFrame, title: str) -> list[Path]:
    """The published leaderboard folder with records.parquet and a dataset card; the files written."""
    written = publish(run_dir, out_dir, summary, title)
    rows = records.load(run_dir)
    write_parquet(records_table(rows), out_dir / RECORDS_PARQUET)
    index = (out_dir / "README.md").read_text()
    write_text_atomic(out_dir / "README.md", str(leaderboard_card(title, index)))
    return [*written, out_dir / RECORDS_PARQUET]


def records_table(rows: list[dict]) -> pa.Table:
    """One row per record: ids and labels, `metric.<name>` columns (null where undefined), and the
    remaining nested fields as JSON text, so every record survives whatever its plugins reported."""
    metric_names = sorted({name for r in rows for name in (r.get("metrics") or {})})
    flat = []
    for r in rows:
        row: dict[str, Any] = {"cell_id": r["cell_id"], "cell_key": r["cell_key"], "seed_index": r["seed_index"],
                               "split": r.get("split"), "status": r["status"]}
        row.update(zip(LABEL_COLUMNS, r["cell_id"].split("/")))
        row.update({f"metric.{name}": _number((r.get("metrics") or {}).get(name)) for name in metric_names})
        row.update({key: None if value is None else json.dumps(value, sort_keys=True, default=str)
                    for key, value in r.items() if key not in row and key != "metrics"})
        flat.append(row)
    frame = pd.DataFrame(flat)
    return pa.Table.from_pandas(frame, preserve_index=False)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def leaderboard_card(title: str, body: str):
    """The dataset card of a published leaderboard: YAML metadata (the Hub's viewer reads
    records.parquet) above the published README."""
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCardData(pretty_name=title, tags=["fairgen-harness", "leaderboard", "fairness", "medical-imaging"],
                           configs=[{"config_name": "records", "data_files": RECORDS_PARQUET}])
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def push(folder: Path, repo_id: str, repo_type: str = "dataset", token: str | None = None) -> str:
    """Upload `folder` to the Hub repository `repo_id` (created if missing); returns the commit URL.
    The token comes from `token`, else HF_TOKEN, else `huggingface-cli login`."""
    from huggingface_hub import create_repo, upload_folder

    create_repo(repo_id, repo_type=repo_type, exist_ok=True, token=token)
    commit = upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type=repo_type, token=token,
                           commit_message=f"fairgen-harness: {Path(folder).name}")
    return str(getattr(commit, "commit_url", commit))


# -- synthetic sets and generator weights --------------------------------------------------
def export_synthetic(run_dir: Path, cache_dir: Path, out_dir: Path) -> dict[str, int]:
    """Write the run's synthetic sets and generator states (module docstring) into `out_dir`,
    which must be new or empty. Returns how many sets, images and generators were written."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    records.refuse_limited(run_dir, "exported")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(f"--synthetic {out_dir}: the folder is not empty; give a new or empty folder")
    cache = Cache(cache_dir)
    sets = _synthetic_sets(run_dir)
    if not sets:
        raise ConfigError(f"{run_dir} has no successful cell with a synthetic set (real-only runs have none)")
    counts = {"sets": 0, "images": 0, "generators": 0}
    features_by_dataset: dict[str, dict] = {}
    models: dict[str, dict] = {}
    for key, record in sets.items():
        synthetic = ImageSet.load(_artifact(cache, "synthetic", key) / "synthetic.npz")
        dataset = record["spec"]["dataset"]["label"]
        path = out_dir / "data" / dataset / f"{record['spec']['generator']['label']}-{key[:12]}.parquet"
        table, features = synthetic_table(synthetic, record, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(table, path, features)
        features_by_dataset[dataset] = features
        counts["sets"] += 1
        counts["images"] += len(synthetic)
        generator_key = record["artifacts"]["generator"]
        models.setdefault(generator_key, record)
    for generator_key, record in models.items():
        _export_generator(cache, generator_key, record, out_dir / "models")
        counts["generators"] += 1
    (out_dir / "README.md").write_text(str(synthetic_card(run_dir, features_by_dataset, counts)))
    return counts


def _synthetic_sets(run_dir: Path) -> dict[str, dict]:
    """Synthetic artifact key -> one ok record that used it (replicates and splits share sets)."""
    sets: dict[str, dict] = {}
    for r in records.load(run_dir):
        key = (r.get("artifacts") or {}).get("synthetic")
        if r.get("status") == "ok" and key:
            sets.setdefault(key, r)
    return sets


def _artifact(cache: Cache, kind: str, key: str) -> Path:
    path = cache.path(kind, key)
    meta, problem = cache.verify(path)
    if meta is None:
        raise ConfigError(f"the {kind} artifact {key} of this run is not in the cache {cache.root} "
                          f"({problem or 'missing'}); pass the run's --cache, or rerun the run to rebuild it")
    return path


def synthetic_table(synthetic: ImageSet, record: dict, key: str) -> tuple[pa.Table, dict]:
    """A synthetic set as rows (image as PNG bytes) and its `datasets` features."""
    generator = (record.get("plugins") or {}).get("generator") or {}
    spec = record["spec"]
    label_names = list(synthetic.label_names)
    attributes = {name: [_attribute_value(synthetic.attribute_vocab[name], int(code)) for code in codes]
                  for name, codes in synthetic.attributes.items()}
    columns = {
        "image": [{"bytes": _png(image), "path": f"{sample_id}.png"} for image, sample_id in
                  zip(synthetic.images, synthetic.ids)],
        # multi-hot rows become the list of their positive classes, as `datasets` reads Sequence(ClassLabel)
        "label": ([np.flatnonzero(row).tolist() for row in synthetic.labels] if synthetic.multilabel
                  else synthetic.labels.tolist()),
        "attributes": [{name: values[i] for name, values in attributes.items()} for i in range(len(synthetic))],
        "provenance": synthetic.provenance.tolist(),
        "id": synthetic.ids.tolist(),
        "generator": [{"label": spec["generator"]["label"], "name": generator.get("name", spec["generator"]["name"]),
                       "version": str(generator.get("version", "")),
                       "params": json.dumps(generator.get("params", spec["generator"].get("params", {})),
                                            sort_keys=True, default=str),
                       "source_digest": generator.get("source_digest") or ""}] * len(synthetic),
        "dataset": [spec["dataset"]["label"]] * len(synthetic),
        "scenario": [spec["scenario"]] * len(synthetic),
        "sampling": [json.dumps(spec.get("sampling"), sort_keys=True)] * len(synthetic),
        "synthetic_key": [key] * len(synthetic),
    }
    label_feature = {"_type": "ClassLabel", "names": label_names}
    features = {
        "image": {"_type": "Image"},
        "label": {"feature": label_feature, "_type": "Sequence"} if synthetic.multilabel else label_feature,
        "attributes": {name: {"dtype": "string", "_type": "Value"} for name in synthetic.attributes},
        "provenance": {"dtype": "string", "_type": "Value"},
        "id": {"dtype": "string", "_type": "Value"},
        "generator": {name: {"dtype": "string", "_type": "Value"}
                      for name in ("label", "name", "version", "params", "source_digest")},
        **{name: {"dtype": "string", "_type": "Value"} for name in ("dataset", "scenario", "sampling", "synthetic_key")},
    }
    return pa.Table.from_pydict(columns), features


def _attribute_value(vocab: list[str], code: int) -> str:
    return "unknown" if code < 0 else str(vocab[code])


def _png(image: np.ndarray) -> bytes:
    """A uint8 (C, H, W) image as PNG bytes."""
    from PIL import Image

    array = image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_parquet(table: pa.Table, path: Path, features: dict | None = None) -> None:
    """Write `table`; `features` (in `datasets`' JSON form) go into the schema metadata, where
    `datasets.load_dataset` reads them (images decode as images, labels carry their names)."""
    if features is not None:
        metadata = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def synthetic_card(run_dir: Path, features_by_dataset: dict[str, dict], counts: dict[str, int]):
    """The dataset card of an export: one config per dataset (its files and class names)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    configs = [{"config_name": name, "data_files": [{"split": "train", "path": f"data/{name}/*.parquet"}]}
               for name in sorted(features_by_dataset)]
    data = DatasetCardData(pretty_name=f"Synthetic images of run {run_dir.name}", configs=configs,
                           tags=["fairgen-harness", "synthetic", "fairness", "medical-imaging"],
                           size_categories=_size_category(counts["images"]))
    body = [f"# Synthetic images of run `{run_dir.name}`", "",
            f"Written by `harness export {run_dir.name} --synthetic` (fairgen-harness): {counts['sets']} synthetic "
            f"sets, {counts['images']} images, and the states of {counts['generators']} trained generators under "
            "`models/`, each with its model card.", "",
            "Load a dataset's images with `datasets.load_dataset(\"PATH_OR_REPO\", \"DATASET\")`. Columns: `image`, "
            "`label` (class names in the features; for a multi-label dataset, the list of positive classes), `attributes` (the requested sensitive attributes, by name), "
            "`provenance` (`synthetic:<generator label>`), `id`, `generator` (label, plugin name, version, "
            "resolved parameters as JSON, source digest), `dataset`, `scenario`, `sampling` and `synthetic_key` "
            "(the harness cache key of the set). The run's records say how each set scored.", "",
            "These images are synthetic, made by generative models trained on (skewed) medical-image training "
            "splits, for benchmarking; they are not for clinical use."]
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n")


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def _export_generator(cache: Cache, generator_key: str, record: dict, models_dir: Path) -> Path:
    """Copy a trained generator's saved state (safetensors weights, JSON) with a model card."""
    state = _artifact(cache, "generator", generator_key) / "state"
    out = models_dir / f"{record['spec']['generator']['label']}-{generator_key[:12]}"
    shutil.copytree(state, out)
    files = {p.relative_to(out).as_posix(): file_sha256(p) for p in sorted(out.rglob("*")) if p.is_file()}
    (out / "README.md").write_text(str(model_card(record, generator_key, files)))
    return out


def model_card(record: dict, generator_key: str, files: dict[str, str]):
    """The model card of an exported generator: what it is, what it was trained on, its files."""
    from huggingface_hub import ModelCard, ModelCardData

    spec = record["spec"]
    identity = (record.get("plugins") or {}).get("generator") or {}
    weights = sorted(name for name in files if name.endswith(".safetensors"))
    data = ModelCardData(library_name="fairgen-harness", tags=["fairgen-harness", "generator", "synthetic-data",
                                                               spec["generator"]["name"]],
                         model_name=spec["generator"]["label"])
    body = [f"# {spec['generator']['label']} (`{spec['generator']['name']}` v{identity.get('version', '?')})", "",
            f"A generator trained by fairgen-harness on dataset `{spec['dataset']['label']}`, scenario "
            f"`{spec['scenario']}` (the skewed training split of that scenario). Harness cache key: "
            f"`{generator_key}`.", "",
            "Resolved parameters:", "", "```json", json.dumps(identity.get("params", spec["generator"].get("params", {})),
                                                            indent=1, sort_keys=True, default=str), "```", "",
            f"Plugin source digest: `{identity.get('source_digest') or 'not recorded'}`. Load it with the plugin's "
            "`load(directory)` on this folder.", "",
            "Weights (safetensors): " + (", ".join(f"`{w}`" for w in weights) if weights else
                                         "none; this plugin saves its state in the files below") + ".", "",
            "| file | SHA-256 |", "|---|---|", *[f"| `{name}` | `{digest}` |" for name, digest in files.items()]]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n")
