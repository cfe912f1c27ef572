"""Real histopathology loaders: CAMELYON17 in the WILDS layout (hospital) and TCGA-UT as used by MeDi
(cancer type; tissue source site, race, gender)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from harness import DataError, hookimpl
from harness.scenarios import Scenario, default_scenarios, site_scenarios
from plugins.datasets._real import DROP, RealDataset, assign_splits, read_metadata

TCGA_BARCODE = re.compile(r"TCGA-([A-Z0-9]{2})-([A-Z0-9]{4})")
# WILDS' official split (wilds/datasets/camelyon17_dataset.py; 0-indexed centers, the paper numbers hospitals
# from 1): train on centers 0, 3, 4; OOD validation center 1; OOD test center 2; metadata `split` 1 = ID validation
WILDS_OOD_VAL_CENTER, WILDS_OOD_TEST_CENTER, WILDS_ID_VAL = 1, 2, 1


class Camelyon17(RealDataset):
    """CAMELYON17 patches in the WILDS layout; `hospital` = WILDS `center`.

    split_scheme "wilds" (default) follows WILDS' official split: its OOD test hospital (center 2) is the
    `test_ood` split; its ID validation rows (metadata `split` = 1, centers 0/3/4) are `val`; its training rows
    are divided by patient into train and an in-distribution `test` (test_fraction). Its OOD validation
    hospital (center 1) is left out. "patient" ignores WILDS' split: all hospitals, split by patient."""

    name = "camelyon17"
    version = "2"
    label_names: ClassVar[list[str]] = ["normal", "tumor"]
    high_risk_classes: ClassVar[list[str]] = ["tumor"]
    sensitive_attributes: ClassVar[list[str]] = ["hospital"]
    vocabularies = {"hospital": [f"hospital_{i}" for i in range(5)]}
    required = ["metadata.csv", "patches"]
    source = "https://wilds.stanford.edu/datasets/ (camelyon17_v1.0, e.g. wilds.get_dataset('camelyon17', download=True))"
    layout = ("  metadata.csv   patient, node, x_coord, y_coord, tumor, slide, center, split\n"
              "  patches/patient_PPP_node_N/patch_patient_PPP_node_N_x_X_y_Y.png")
    defaults = {**RealDataset.defaults, "split_scheme": "wilds"}
    choices = {"split_scheme": ["wilds", "patient"]}

    def read_table(self, root: Path) -> pd.DataFrame:
        meta = read_metadata(self, root / "metadata.csv", ["patient", "node", "x_coord", "y_coord", "tumor", "center"])
        if self.params["split_scheme"] == "wilds" and "split" not in meta.columns:
            raise DataError(f"camelyon17: {root / 'metadata.csv'} has no 'split' column (WILDS' ID validation "
                            f"flag); use WILDS' metadata.csv or split_scheme = \"patient\". Expected:\n{self.layout}")
        patient, node = meta["patient"].astype(int).map("{:03d}".format), meta["node"].astype(int).astype(str)
        folder = "patches/patient_" + patient + "_node_" + node
        path = (folder + "/patch_patient_" + patient + "_node_" + node + "_x_" + meta["x_coord"].astype(int).astype(str)
                + "_y_" + meta["y_coord"].astype(int).astype(str) + ".png")
        return pd.DataFrame({"path": path, "label": meta["tumor"].map({0: "normal", 1: "tumor"}),
                             "patient": patient, "hospital": "hospital_" + meta["center"].astype(int).astype(str),
                             "center": meta["center"].astype(int), "wilds_split": meta.get("split", 0)})

    def assign_splits(self, table: pd.DataFrame, seed: int) -> np.ndarray:
        if self.params["split_scheme"] == "patient":
            return super().assign_splits(table, seed)
        by_patient = assign_splits(table["patient"].astype(str), seed, 0.0, self.params["test_fraction"])
        in_distribution = np.where(table["wilds_split"] == WILDS_ID_VAL, "val", by_patient)
        return np.where(table["center"] == WILDS_OOD_TEST_CENTER, "test_ood",
                        np.where(table["center"] == WILDS_OOD_VAL_CENTER, DROP, in_distribution))

    def scenarios(self) -> dict[str, Scenario]:
        return {**default_scenarios(self.primary_attribute), **site_scenarios("hospital")}


class TcgaUT(RealDataset):
    """TCGA-UT (Komura & Ishikawa): patches in one folder per cancer type, named by TCGA barcode."""

    name = "tcga_ut"
    version = "1"
    sensitive_attributes: ClassVar[list[str]] = ["site", "race", "gender"]
    required = ["."]
    source = ("TCGA-UT patches: https://zenodo.org/records/5889558 (Komura et al.); clinical race/gender: "
              "GDC portal clinical.tsv (case_submitter_id, race, gender), as in MeDi")
    layout = ("  <cancer_type>/**/<TCGA-XX-XXXX...>.jpg|png   one folder per cancer type; the barcode's XX is the\n"
              "                                              tissue source site\n"
              "  clinical.csv (optional)                     case_submitter_id, race, gender")
    defaults = {**RealDataset.defaults}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.label_names = []  # the cancer-type folders, read with the data

    def read_table(self, root: Path) -> pd.DataFrame:
        rows = []
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            for image in sorted(folder.rglob("*")):
                match = TCGA_BARCODE.search(image.name)
                if image.suffix.lower() in (".jpg", ".jpeg", ".png") and match:
                    rows.append({"path": str(image.relative_to(root)), "label": folder.name,
                                 "patient": match.group(0), "site": match.group(1)})
        if not rows:
            raise DataError(f"tcga_ut: no images named by TCGA barcode in cancer-type folders under {root}.\n"
                            f"Expected layout:\n{self.layout}")
        table = pd.DataFrame(rows)
        self.label_names = sorted(table["label"].unique())
        clinical = self._clinical(root)
        table["race"] = table["patient"].map(clinical.get("race", {}))
        table["gender"] = table["patient"].map(clinical.get("gender", {}))
        return table

    def _clinical(self, root: Path) -> dict[str, dict[str, str]]:
        if not (root / "clinical.csv").exists():
            return {}
        clinical = read_metadata(self, root / "clinical.csv", ["case_submitter_id"]).drop_duplicates("case_submitter_id").set_index("case_submitter_id")
        known = lambda v: None if pd.isna(v) or str(v).startswith(("not ", "Not ", "'--", "unknown")) else str(v)  # noqa: E731
        return {column: clinical[column].map(known).to_dict() for column in ("race", "gender") if column in clinical}

    def scenarios(self) -> dict[str, Scenario]:
        return {**default_scenarios(self.primary_attribute), **site_scenarios("site", demographic="race")}


@hookimpl
def harness_datasets() -> list[type]:
    return [Camelyon17, TcgaUT]
