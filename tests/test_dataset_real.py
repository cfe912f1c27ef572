"""Real-data loaders, each on a tiny fixture in its real on-disk layout written here; the COVID-19
collection also on the real images in ../shared/data/covid-chestxray."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness import DataError
from plugins.datasets import _real
from plugins.datasets.brain_real import Oasis1
from plugins.datasets.chest_real import CheXpert, CovidChestXray
from plugins.datasets.skin_real import Fitzpatrick17k, Ham10000
from plugins.datasets.tissue_real import Camelyon17, TcgaUT

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
COVID = SHARED / "covid-chestxray"
FITZPATRICK_CSV = SHARED / "fitzpatrick17k" / "fitzpatrick17k.csv"


def write_image(path: Path, value: int, size: tuple[int, int] = (40, 30), mode: str = "RGB") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, (value, 255 - value, 90) if mode == "RGB" else value).save(path)
    return path.name


def check_splits(dataset, cache: Path, channels: int, n_rows: int) -> dict:
    splits = dataset.load(0)
    everything = [s for _, s in splits.items()]
    assert sum(len(s) for s in everything) == n_rows
    for split in everything:
        assert split.image_shape == (channels, 16, 16)
    assert len(list(cache.glob("*.npz"))) == 1  # resized once and cached
    return {name: s for name, s in splits.items()}


def loader(cls, root: Path, cache: Path, **params):
    return cls(root=str(root), cache_dir=str(cache), resolution=16, val_fraction=0.2, test_fraction=0.3, **params)


def test_missing_root_says_where_to_get_the_data_and_the_layout(tmp_path):
    for cls in (Fitzpatrick17k, Ham10000, CheXpert, CovidChestXray, Oasis1, Camelyon17):
        with pytest.raises(DataError) as error:
            cls(root=str(tmp_path / "absent")).load(0)
        assert cls.source.split()[0] in str(error.value) and "layout" in str(error.value)
    with pytest.raises(DataError, match="no root given"):
        CovidChestXray().load(0)


def test_cache_is_reused_and_depends_on_resolution(tmp_path, monkeypatch):
    root = write_covid_fixture(tmp_path / "covid")
    first = loader(CovidChestXray, root, tmp_path / "cache").load(0)
    monkeypatch.setattr(_real, "read_image", lambda *a: pytest.fail("cached images were read again"))
    again = loader(CovidChestXray, root, tmp_path / "cache").load(0)
    assert again.train.fingerprint() == first.train.fingerprint()
    with pytest.raises(pytest.fail.Exception):
        CovidChestXray(root=str(root), cache_dir=str(tmp_path / "cache"), resolution=8).load(0)


def test_metadata_paths_may_not_escape_root(tmp_path):
    root = tmp_path / "chexpert"
    write_image(tmp_path / "secret.jpg", 10)
    write_image(root / "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg", 20)
    pd.DataFrame({"Path": ["../secret.jpg"], "Sex": ["Male"], "Age": [50], "Frontal/Lateral": ["Frontal"],
                  "No Finding": [1.0], "Cardiomegaly": [None], "Pleural Effusion": [None], "Pneumonia": [None],
                  "Pneumothorax": [None]}).to_csv(root / "train.csv", index=False)
    with pytest.raises(DataError, match="outside the data root"):
        loader(CheXpert, root, tmp_path / "cache").load(0)


def write_covid_fixture(root: Path) -> Path:
    rows = []
    for i in range(24):
        name = write_image(root / "images" / f"x{i}.png", 10 * i, mode="L")
        rows.append({"patientid": i // 2, "sex": ["M", "F", None][i % 3], "age": 30 + 3 * i,
                     "finding": ["COVID-19", "Pneumonia/Viral", "No Finding", "COVID-19, ARDS"][i % 4],
                     "view": ["PA", "AP Supine", "PA"][i % 3], "modality": "X-ray",
                     "location": ["Hannover", "Melbourne", None][i % 3], "filename": name})
    rows.append({**rows[0], "view": "L", "filename": write_image(root / "images" / "lateral.png", 5, mode="L")})
    rows.append({**rows[0], "finding": "todo", "filename": write_image(root / "images" / "todo.png", 5, mode="L")})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    return root


def test_covid_fixture_frontal_views_labels_and_groups(tmp_path):
    root = write_covid_fixture(tmp_path / "covid")
    splits = check_splits(loader(CovidChestXray, root, tmp_path / "cache"), tmp_path / "cache", 1, 24)
    train = splits["train"]
    assert train.label_names == ["COVID-19", "other pneumonia", "No Finding"]
    assert train.attribute_vocab["site"] == ["Hannover", "Melbourne"]
    all_ids = np.concatenate([s.ids for s in splits.values()])
    assert "covid:images/lateral.png" not in all_ids and "covid:images/todo.png" not in all_ids
    for split in splits.values():  # the fixture's labels and groups survive the split
        number = np.array([int(i.split("images/x")[1].split(".")[0]) for i in split.ids])
        assert split.labels.tolist() == [[0, 1, 2, 0][n % 4] for n in number]
        assert split.attributes["sex"].tolist() == [[1, 0, -1][n % 3] for n in number]


def test_covid_patients_never_cross_splits(tmp_path):
    root = write_covid_fixture(tmp_path / "covid")
    splits = loader(CovidChestXray, root, tmp_path / "cache").load(0)
    patient = lambda i: int(i.split("images/x")[1].split(".")[0]) // 2  # noqa: E731
    sets = [{patient(i) for i in s.ids} for _, s in splits.items()]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])


@pytest.mark.skipif(not COVID.is_dir(), reason=f"the real COVID-19 collection is not at {COVID}")
def test_covid_real_images(tmp_path):
    dataset = CovidChestXray(root=str(COVID), cache_dir=str(tmp_path), resolution=32)
    splits = dataset.load(0).validate()
    total = sum(len(s) for _, s in splits.items())
    assert 250 < total < 389  # frontal X-rays with a usable finding
    train = splits.train
    assert train.image_shape == (1, 32, 32) and train.images.std() > 20
    assert set(train.attribute_vocab) == {"sex", "age", "site"}
    assert train.attribute_vocab["sex"] == ["female", "male"] and "Hannover Medical School, Hannover, Germany" in \
        train.attribute_vocab["site"]
    labels = np.concatenate([s.labels for _, s in splits.items()])
    assert np.bincount(labels, minlength=3)[0] > 150  # COVID-19 is the largest class
    assert min(len(s) for _, s in splits.items()) > 20


@pytest.mark.skipif(not FITZPATRICK_CSV.exists(), reason=f"the real Fitzpatrick17k CSV is not at {FITZPATRICK_CSV}")
def test_fitzpatrick_real_csv_with_placeholder_images(tmp_path):
    root = tmp_path / "fitz"
    meta = pd.read_csv(FITZPATRICK_CSV)
    root.mkdir()
    meta.to_csv(root / "fitzpatrick17k.csv", index=False)
    chosen = meta[meta["label"].isin(["psoriasis", "lichen planus", "basal cell carcinoma",
                                      "allergic contact dermatitis", "squamous cell carcinoma"])].groupby("label").head(6)
    for md5, scale in zip(chosen["md5hash"], chosen["fitzpatrick_scale"]):
        write_image(root / "images" / f"{md5}.jpg", 40 * max(scale, 0))
    write_image(root / "images" / f"{meta['md5hash'].iloc[0]}.jpg", 1)  # an image outside the subset
    splits = check_splits(loader(Fitzpatrick17k, root, tmp_path / "cache"), tmp_path / "cache", 3, 30)
    train = splits["train"]
    assert train.label_names[1] == "basal cell carcinoma"
    assert Fitzpatrick17k().high_risk_classes == ["basal cell carcinoma", "squamous cell carcinoma"]
    expected = {row.md5hash: {1: 0, 2: 0, 3: 1, 4: 1, 5: 2, 6: 2}.get(row.fitzpatrick_scale, -1)
                for row in chosen.itertuples()}
    for split in splits.values():
        assert split.attributes["skin_tone"].tolist() == [expected[i.split("/")[-1][:-4]] for i in split.ids]
    three = loader(Fitzpatrick17k, root, tmp_path / "cache3", subset="three_partition").load(0)
    assert three.train.label_names == ["benign", "malignant", "non-neoplastic"]


def test_ham10000_layout_and_attributes(tmp_path):
    root = tmp_path / "ham"
    rows = []
    for i in range(14):
        folder = "HAM10000_images_part_1" if i < 7 else "HAM10000_images_part_2"
        write_image(root / folder / f"ISIC_{i:07d}.jpg", 15 * i)
        rows.append({"lesion_id": f"HAM_{i // 2}", "image_id": f"ISIC_{i:07d}",
                     "dx": ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"][i % 7], "dx_type": "histo",
                     "age": [25.0, 45.0, 70.0, None][i % 4], "sex": ["male", "female", "unknown"][i % 3],
                     "localization": ["back", "face", "unknown"][i % 3]})
    pd.DataFrame(rows).to_csv(root / "HAM10000_metadata.csv", index=False)
    splits = check_splits(loader(Ham10000, root, tmp_path / "cache"), tmp_path / "cache", 3, 14)
    for split in splits.values():
        number = np.array([int(i[-11:-4]) for i in split.ids])
        assert split.attributes["age"].tolist() == [[0, 1, 2, -1][n % 4] for n in number]
        assert split.attributes["sex"].tolist() == [[1, 0, -1][n % 3] for n in number]
        assert split.attributes["site"].tolist() == [[0, 1, -1][n % 3] for n in number]
        assert split.labels.tolist() == [n % 7 for n in number]


def test_chexpert_single_label_frontal_rows(tmp_path):
    root = tmp_path / "CheXpert-v1.0-small"
    findings = ["No Finding", "Cardiomegaly", "Pleural Effusion", "Pneumonia", "Pneumothorax"]
    rows = []
    for i in range(20):
        view = "lateral" if i == 19 else "frontal"
        path = f"CheXpert-v1.0-small/train/patient{i // 2:05d}/study1/view1_{view}.jpg"
        write_image(root / path.split("/", 1)[1].replace("view1", f"view{i}"), 12 * i, mode="L")
        row = {"Path": path.replace("view1", f"view{i}"), "Sex": ["Female", "Male"][i % 2], "Age": 20 + 4 * i,
               "Frontal/Lateral": view.capitalize(), "AP/PA": "AP", **{f: None for f in findings}}
        row[findings[i % 5]] = 1.0
        if i == 18:
            row["Cardiomegaly"] = 1.0  # two positives: not single-label, dropped
        if i == 17:
            row[findings[i % 5]] = -1.0  # uncertain only: dropped
        rows.append(row)
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    splits = check_splits(loader(CheXpert, root, tmp_path / "cache"), tmp_path / "cache", 1, 17)
    for split in splits.values():
        number = np.array([int(i.split("view")[-1].split("_")[0]) for i in split.ids])
        assert split.labels.tolist() == [n % 5 for n in number]
        assert split.attributes["sex"].tolist() == [n % 2 for n in number]
    with pytest.raises(DataError, match="not columns"):
        loader(CheXpert, root, tmp_path / "cache", findings=["Covid"]).load(0)


def test_oasis_slices_age_band_and_cdr(tmp_path):
    root = tmp_path / "oasis"
    subjects = []
    for s in range(8):
        subject = f"OAS1_{s + 1:04d}_MR1"
        subjects.append({"ID": subject, "M/F": "FM"[s % 2], "Hand": "R", "Age": 60 + 5 * s,
                         "CDR": [0.0, 0.5, None, 1.0][s % 4]})
        for k in range(2):
            write_image(root / "Data" / "Some Class" / f"{subject}_mpr-1_{100 + k}.jpg", 20 * s + k, mode="L")
    pd.DataFrame(subjects).to_csv(root / "oasis_cross-sectional.csv", index=False)
    splits = check_splits(loader(Oasis1, root, tmp_path / "cache"), tmp_path / "cache", 1, 12)  # CDR unknown dropped
    for split in splits.values():
        subject = np.array([int(i.split("OAS1_")[1][:4]) - 1 for i in split.ids])
        assert split.labels.tolist() == [[0, 1, -9, 1][s % 4] for s in subject]
        assert split.attributes["age"].tolist() == [int(60 + 5 * s >= 75) for s in subject]
        assert split.attributes["sex"].tolist() == [s % 2 for s in subject]


def test_camelyon17_wilds_layout(tmp_path):
    root = tmp_path / "camelyon17_v1.0"
    rows = []
    for i in range(15):
        patient, node, x, y = i % 5, i % 2, 100 * i, 50 * i
        write_image(root / "patches" / f"patient_{patient:03d}_node_{node}" /
                    f"patch_patient_{patient:03d}_node_{node}_x_{x}_y_{y}.png", 10 * i)
        rows.append({"patient": patient, "node": node, "x_coord": x, "y_coord": y, "tumor": i % 2,
                     "slide": patient * 2 + node, "center": patient % 5, "split": 0})
    pd.DataFrame(rows).to_csv(root / "metadata.csv")
    dataset = loader(Camelyon17, root, tmp_path / "cache")
    splits = check_splits(dataset, tmp_path / "cache", 3, 15)
    for split in splits.values():
        x = np.array([int(i.split("_x_")[1].split("_")[0]) // 100 for i in split.ids])
        assert split.labels.tolist() == [i % 2 for i in x]
        assert split.attributes["hospital"].tolist() == [(i % 5) for i in x]
    assert "one_site_per_class" in dataset.scenarios()


def test_tcga_ut_folders_barcodes_and_clinical(tmp_path):
    root = tmp_path / "tcga_ut"
    cases = ["TCGA-A1-0001", "TCGA-B2-0002", "TCGA-A1-0003", "TCGA-C3-0004"]
    for i in range(12):
        cancer = ["Lung_squamous", "Kidney_clear"][i % 2]
        write_image(root / cancer / "0" / f"{cases[i % 4]}-01Z-00-DX1_{i}.jpg", 20 * i)
    pd.DataFrame({"case_submitter_id": cases, "race": ["white", "asian", "not reported", "white"],
                  "gender": ["female", "male", "male", "female"]}).to_csv(root / "clinical.csv", index=False)
    dataset = loader(TcgaUT, root, tmp_path / "cache", attribute="race")
    assert dataset.primary_attribute == "race"
    splits = check_splits(dataset, tmp_path / "cache", 3, 12)
    for split in splits.values():
        assert split.label_names == ["Kidney_clear", "Lung_squamous"]
        assert split.attribute_vocab["site"] == ["A1", "B2", "C3"]
        case = np.array([int(i.split("_")[-1][:-4]) % 4 for i in split.ids])
        assert split.attributes["site"].tolist() == [[0, 1, 0, 2][c] for c in case]
        assert split.attributes["race"].tolist() == [[1, 0, -1, 1][c] for c in case]
    with pytest.raises(DataError, match="no attribute"):
        TcgaUT(attribute="age")
