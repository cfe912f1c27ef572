"""Real-data loaders, each on a tiny fixture in its real on-disk layout written here; the COVID-19
collection (alone and in FairGen's CheXpert combine) also on the real images in ../shared/data/covid-chestxray."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness import DataError
from plugins.datasets import _real
from plugins.datasets.brain_real import Oasis1
from plugins.datasets.chest_real import CheXpert, CheXpertCombine, CovidChestXray
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
    for cls in (Fitzpatrick17k, Ham10000, CheXpert, CovidChestXray, Oasis1, Camelyon17, CheXpertCombine):
        with pytest.raises(DataError) as error:
            cls(root=str(tmp_path / "absent")).load(0)
        assert cls.source.split()[0] in str(error.value) and "layout" in str(error.value)
    with pytest.raises(DataError, match="no root given"):
        CheXpert().load(0)


def test_an_empty_root_means_the_loaders_folder_under_harness_data(tmp_path, monkeypatch):
    monkeypatch.setenv(_real.DATA_ENV, str(tmp_path))
    with pytest.raises(DataError, match=f"{tmp_path / 'covid-chestxray'}.*HARNESS_DATA"):
        CovidChestXray().load(0)
    root = write_covid_fixture(tmp_path / "covid-chestxray")
    assert CovidChestXray().root() == root.resolve()
    assert CovidChestXray(root=str(tmp_path / "elsewhere")).params["root"]  # an explicit root wins
    with pytest.raises(DataError, match="elsewhere"):
        CovidChestXray(root=str(tmp_path / "elsewhere")).root()


def test_without_harness_data_the_default_is_shared_data_beside_the_checkout(monkeypatch):
    monkeypatch.delenv(_real.DATA_ENV, raising=False)
    assert _real.data_home().resolve() == SHARED.resolve()


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


def test_camelyon17_wilds_layout_split_by_patient(tmp_path):
    root = tmp_path / "camelyon17_v1.0"
    rows = []
    for i in range(15):
        patient, node, x, y = i % 5, i % 2, 100 * i, 50 * i
        write_image(root / "patches" / f"patient_{patient:03d}_node_{node}" /
                    f"patch_patient_{patient:03d}_node_{node}_x_{x}_y_{y}.png", 10 * i)
        rows.append({"patient": patient, "node": node, "x_coord": x, "y_coord": y, "tumor": i % 2,
                     "slide": patient * 2 + node, "center": patient % 5, "split": 0})
    pd.DataFrame(rows).to_csv(root / "metadata.csv")
    dataset = loader(Camelyon17, root, tmp_path / "cache", split_scheme="patient")
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


# -- Fitzpatrick17k subsets -------------------------------------------------------------------------------

SKINDIFF7 = ["basal cell carcinoma", "folliculitis", "nematode infection", "neutrophilic dermatoses",
             "prurigo nodularis", "psoriasis", "squamous cell carcinoma"]


def write_fitzpatrick_fixture(root: Path) -> pd.DataFrame:
    """Two rows per label of skin-diff's 7 plus lichen planus (FairGen only) and acne (neither); one without image."""
    rows = []
    for i, label in enumerate([*SKINDIFF7, "lichen planus", "acne vulgaris"] * 2):
        md5 = f"{i:032x}"
        rows.append({"md5hash": md5, "fitzpatrick_scale": [1, 2, 3, 4, 5, 6, -1][i % 7], "fitzpatrick_centaur": 1,
                     "label": label, "nine_partition_label": "inflammatory", "three_partition_label": "non-neoplastic",
                     "qc": None, "url": f"https://example.org/{md5}.jpg", "url_alphanum": md5})
        if i != 0:  # the first row's image was never downloaded: skipped
            write_image(root / "images" / f"{md5}.jpg", 10 * i)
    root.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(root / "fitzpatrick17k.csv", index=False)
    return table.iloc[1:]


def test_fitzpatrick_skindiff7_and_all_subsets(tmp_path):
    root = tmp_path / "fitz"
    rows = write_fitzpatrick_fixture(root)
    dataset = loader(Fitzpatrick17k, root, tmp_path / "cache", subset="skindiff7")
    assert dataset.label_names == SKINDIFF7
    assert dataset.high_risk_classes == ["basal cell carcinoma", "squamous cell carcinoma"]
    splits = check_splits(dataset, tmp_path / "cache", 3, 13)  # 2 x 7 rows, less the one without image
    truth = {r.md5hash: (SKINDIFF7.index(r.label) if r.label in SKINDIFF7 else None,
                         {1: 0, 2: 0, 3: 1, 4: 1, 5: 2, 6: 2}.get(r.fitzpatrick_scale, -1)) for r in rows.itertuples()}
    for split in splits.values():
        md5 = [i.split("/")[-1][:-4] for i in split.ids]
        assert [(label, tone) for label, tone in zip(split.labels, split.attributes["skin_tone"])] == \
            [truth[m] for m in md5]
    everything = loader(Fitzpatrick17k, root, tmp_path / "cache_all", subset="all")
    assert everything.label_names == []  # read with the data
    splits = check_splits(everything, tmp_path / "cache_all", 3, 17)
    assert splits["train"].label_names == sorted({*SKINDIFF7, "lichen planus", "acne vulgaris"})
    with pytest.raises(DataError, match="unknown subset 'skindiff'.*skindiff7"):
        Fitzpatrick17k(subset="skindiff")


@pytest.mark.skipif(not FITZPATRICK_CSV.exists(), reason=f"the real Fitzpatrick17k CSV is not at {FITZPATRICK_CSV}")
def test_skindiff7_labels_are_real_fitzpatrick_labels():
    counts = pd.read_csv(FITZPATRICK_CSV)["label"].value_counts()
    assert set(SKINDIFF7) <= set(counts.index)
    assert counts[SKINDIFF7].sum() == 2835  # rows of the 7 conditions in the released CSV


# -- FairGen's CheXpert combine -------------------------------------------------------------------------

def write_chexpert_fixture(root: Path, findings: list[str], n: int = 12) -> Path:
    """n frontal single-label rows cycling through findings, sexes "Female"/"Male", ages 20..64."""
    rows = []
    for i in range(n):
        path = f"CheXpert-v1.0-small/train/patient{i:05d}/study1/view1_frontal.jpg"
        write_image(root / path.split("/", 1)[1], 7 * i, mode="L")
        row = {"Path": path, "Sex": ["Female", "Male"][i % 2], "Age": 20 + 4 * i, "Frontal/Lateral": "Frontal",
               "AP/PA": "AP", "Cardiomegaly": None, **{f: None for f in findings}}
        row[findings[i % len(findings)]] = 1.0
        rows.append(row)
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    return root


FAIRGEN_CHEST = ["COVID-19", "Edema", "Lung Opacity", "No Finding", "Pleural Effusion"]


def test_chexpert_combine_fixture_labels_sources_and_groups(tmp_path, monkeypatch):
    chexpert = write_chexpert_fixture(tmp_path / "CheXpert-v1.0-small", FAIRGEN_CHEST[1:])
    covid = write_covid_fixture(tmp_path / "covid")
    dataset = loader(CheXpertCombine, chexpert, tmp_path / "cache", covid_root=str(covid))
    assert dataset.label_names == FAIRGEN_CHEST and dataset.high_risk_classes == ["COVID-19"]
    # 12 CheXpert rows + the collection's COVID-19 (12) and No Finding (6); its 6 other pneumonias are left out
    splits = check_splits(dataset, tmp_path / "cache", 1, 30)
    for split in splits.values():
        assert split.attribute_vocab == {"sex": ["female", "male"], "age": ["<40", "40-59", "60-79", "80+"],
                                         "source": ["chexpert", "covid"]}
        for sample, label, sex, source in zip(split.ids, split.labels, split.attributes["sex"],
                                              split.attributes["source"]):
            if "/patient" in sample:  # CheXpert: "Female"/"Male"
                i = int(sample.split("/patient")[1][:5])
                assert (label, sex, source) == (1 + i % 4, i % 2, 0)
            else:  # the collection: "F"/"M"/unknown, COVID-19 or No Finding only
                n = int(sample.split("images/x")[1].split(".")[0])
                assert (label, sex, source) == ({0: 0, 2: 3, 3: 0}[n % 4], [1, 0, -1][n % 3], 1)
    monkeypatch.setenv(_real.DATA_ENV, str(tmp_path / "no-data"))  # no collection at the default root either
    with pytest.raises(DataError, match="(?s)covid_root.*ieee8023"):
        loader(CheXpertCombine, chexpert, tmp_path / "cache").load(0)


@pytest.mark.skipif(not COVID.is_dir(), reason=f"the real COVID-19 collection is not at {COVID}")
def test_chexpert_combine_with_the_real_covid_collection(tmp_path):
    chexpert = write_chexpert_fixture(tmp_path / "CheXpert-v1.0-small", FAIRGEN_CHEST[1:], n=16)
    dataset = CheXpertCombine(root=str(chexpert), covid_root=str(COVID), cache_dir=str(tmp_path / "cache"),
                              resolution=16)
    splits = dataset.load(0).validate()
    labels = np.concatenate([s.labels for _, s in splits.items()])
    source = np.concatenate([s.attributes["source"] for _, s in splits.items()])
    assert (source == 0).sum() == 16 and (source == 1).sum() > 150
    assert set(labels[source == 0]) == {1, 2, 3, 4} and set(labels[source == 1]) <= {0, 3}
    assert (labels == 0).sum() > 150  # the collection's COVID-19 images
    sex = np.concatenate([s.attributes["sex"] for _, s in splits.items()])
    assert {0, 1} <= set(sex[source == 1])  # the collection's "F"/"M" read into the shared vocabulary


# -- CAMELYON17: WILDS' official split ---------------------------------------------------------------------

def write_wilds_camelyon(root: Path) -> pd.DataFrame:
    """Two patients per center (0..4), three patches each; WILDS' metadata `split` = 1 on one patch of each
    patient of the training centers (0, 3, 4), as its ID validation rows."""
    rows = []
    for center in range(5):
        for k in range(2):
            patient = 10 * center + k
            for j in range(3):
                x, y = 96 * j, 32 * center
                write_image(root / "patches" / f"patient_{patient:03d}_node_{k}" /
                            f"patch_patient_{patient:03d}_node_{k}_x_{x}_y_{y}.png", 12 * center + j)
                rows.append({"patient": patient, "node": k, "x_coord": x, "y_coord": y, "tumor": j % 2,
                             "slide": 2 * patient + k, "center": center,
                             "split": int(j == 2 and center in (0, 3, 4))})
    table = pd.DataFrame(rows)
    table.to_csv(root / "metadata.csv")  # WILDS writes its index as the first, unnamed column
    return table


def test_camelyon17_official_wilds_split_gives_test_ood(tmp_path):
    root = tmp_path / "camelyon17_v1.0"
    write_wilds_camelyon(root)
    dataset = Camelyon17(root=str(root), cache_dir=str(tmp_path / "cache"), resolution=16, test_fraction=0.5)
    splits = dict(dataset.load(0).validate().items())
    assert set(splits) == {"train", "val", "test", "test_ood"}
    hospitals = {name: set(s.attributes["hospital"].tolist()) for name, s in splits.items()}
    assert hospitals["test_ood"] == {2}  # WILDS' OOD test hospital, all 6 patches
    assert len(splits["test_ood"]) == 6 and splits["test_ood"].labels.tolist().count(1) == 2
    assert hospitals["val"] == {0, 3, 4} and len(splits["val"]) == 6  # WILDS' ID validation rows
    assert all(i.endswith("_x_192_y_" + i.split("_y_")[1]) for i in splits["val"].ids)
    assert hospitals["train"] | hospitals["test"] <= {0, 3, 4}  # OOD validation hospital 1 is left out
    assert len(splits["train"]) + len(splits["test"]) == 12 and len(splits["test"]) > 0
    patient = lambda i: i.split("patch_patient_")[1][:3]  # noqa: E731
    assert not {patient(i) for i in splits["train"].ids} & {patient(i) for i in splits["test"].ids}
    assert splits["test_ood"].attribute_vocab["hospital"] == [f"hospital_{i}" for i in range(5)]
    (root / "metadata.csv").write_text(pd.read_csv(root / "metadata.csv").drop(columns="split").to_csv())
    with pytest.raises(DataError, match="no 'split' column.*split_scheme"):
        loader(Camelyon17, root, tmp_path / "cache").load(0)
    with pytest.raises(DataError, match="unknown split_scheme"):
        Camelyon17(split_scheme="official")


def test_ls_datasets_shows_the_choices_and_second_folders():
    from harness.describe import dataset_overview
    text = dataset_overview([Fitzpatrick17k, Camelyon17, CheXpertCombine])  # cells wrap at 30 characters
    assert "subset=fairgen5" in text and "(fairgen5|skindiff7|all|three_" in text
    assert "split_scheme=wilds" in text and "(wilds|patient)" in text and "covid_root" in text


# -- loader correctness: wrong numbers must be errors, not silent ------------------------------------------

def test_covid_findings_written_as_paths_keep_their_class(tmp_path):
    """The collection's newer metadata writes findings as paths (Pneumonia/Viral/COVID-19)."""
    root = write_covid_fixture(tmp_path / "covid")
    meta = pd.read_csv(root / "metadata.csv")
    meta["finding"] = meta["finding"].replace({"COVID-19": "Pneumonia/Viral/COVID-19",
                                               "COVID-19, ARDS": "Pneumonia/Viral/COVID-19, ARDS"})
    meta.to_csv(root / "metadata.csv", index=False)
    splits = loader(CovidChestXray, root, tmp_path / "cache").load(0)
    labels = np.concatenate([s.labels for _, s in splits.items()])
    assert np.bincount(labels, minlength=3).tolist() == [12, 6, 6]  # as with plain names
    chexpert = write_chexpert_fixture(tmp_path / "CheXpert-v1.0-small", FAIRGEN_CHEST[1:])
    combine = loader(CheXpertCombine, chexpert, tmp_path / "cache", covid_root=str(root)).load(0)
    assert (np.concatenate([s.labels for _, s in combine.items()]) == 0).sum() == 12  # COVID-19 kept


def test_covid_without_a_class_fails_naming_it(tmp_path):
    root = write_covid_fixture(tmp_path / "covid")
    meta = pd.read_csv(root / "metadata.csv")
    meta[~meta["finding"].str.startswith("COVID-19")].to_csv(root / "metadata.csv", index=False)
    with pytest.raises(DataError, match=r"(?s)finding \['COVID-19'\].*Pneumonia/Viral/COVID-19"):
        loader(CovidChestXray, root, tmp_path / "cache").load(0)


def test_a_listed_image_that_is_missing_is_an_error(tmp_path):
    root = write_covid_fixture(tmp_path / "covid")
    (root / "images" / "x5.png").unlink()
    with pytest.raises(DataError, match="image 'images/x5.png' listed in the metadata is missing"):
        loader(CovidChestXray, root, tmp_path / "cache").load(0)


def test_edited_data_gives_new_splits_not_the_cached_ones(tmp_path):
    from harness.cache import Cache
    from harness.runner import _splits

    root = write_covid_fixture(tmp_path / "covid")
    cache, identity = Cache(tmp_path / "artifacts"), {"name": "covid"}  # same plugin, version, parameters
    key, splits = _splits(cache, loader(CovidChestXray, root, tmp_path / "cache"), identity)
    assert sum(len(s) for _, s in splits.items()) == 24
    meta = pd.read_csv(root / "metadata.csv")
    meta.iloc[4:].to_csv(root / "metadata.csv", index=False)  # four rows fewer
    new_key, new_splits = _splits(cache, loader(CovidChestXray, root, tmp_path / "cache"), identity)
    assert new_key != key and sum(len(s) for _, s in new_splits.items()) == 20
    again = _splits(cache, loader(CovidChestXray, root, tmp_path / "cache"), identity)[0]
    assert again == new_key  # unchanged data: same key


@pytest.mark.parametrize("content, expected", [
    ("", r"HAM10000_metadata.csv is empty; it needs the columns \['lesion_id', 'image_id', 'dx'"),
    ("lesion_id,image_id,age,sex,localization\nHAM_0,ISIC_0000000,40,male,back\n",
     r"(?s)HAM10000_metadata.csv lacks the columns \['dx'\].*Expected layout.*lesion_id, image_id, dx"),
])
def test_a_bad_metadata_file_names_the_file_the_columns_and_the_layout(tmp_path, content, expected):
    root = tmp_path / "ham"
    root.mkdir()
    (root / "HAM10000_metadata.csv").write_text(content)
    with pytest.raises(DataError, match=expected):
        loader(Ham10000, root, tmp_path / "cache").load(0)


def test_fitzpatrick_counts_rows_without_image_and_reads_url_alphanum_names(tmp_path):
    root = tmp_path / "fitz"
    rows = write_fitzpatrick_fixture(root)
    first = rows.iloc[0]
    (root / "images" / f"{first.md5hash}.jpg").rename(root / "images" / f"{first.url_alphanum}.jpg")
    with pytest.warns(UserWarning, match=r"1 of 14 rows of subset 'skindiff7' have no image"):
        splits = loader(Fitzpatrick17k, root, tmp_path / "cache", subset="skindiff7").load(0)
    assert sum(len(s) for _, s in splits.items()) == 13  # the renamed image is found by its url_alphanum name


ISIC2017 = SHARED / "isic2017"


@pytest.mark.skipif(not ISIC2017.is_dir(), reason=f"ISIC 2017 is not at {ISIC2017}")
def test_isic2017_official_validation_and_a_stratified_test_split(tmp_path):
    from plugins.datasets.skin_real import Isic2017

    splits = Isic2017(root=str(ISIC2017), cache_dir=str(tmp_path), resolution=16).load(0)
    sizes = {name: len(s) for name, s in splits.items()}
    assert sizes["val"] == 150 and sizes["train"] + sizes["test"] == 2000 and abs(sizes["test"] - 400) <= 3
    assert splits.val.label_names == ["other", "melanoma"] and splits.val.attribute_vocab["sex"] == ["female", "male"]
    assert int(splits.val.labels.sum()) == 30  # the official validation split: 30 melanomas of 150
    train_and_test = [splits.train, splits.test]
    for sex in (0, 1, -1):  # each class x sex stratum keeps its share (README: melanoma f 118/871, m 197/900, ? 59/229)
        for label in (0, 1):
            n = [int(((s.attributes["sex"] == sex) & (s.labels == label)).sum()) for s in train_and_test]
            assert n[1] == round(0.2 * sum(n)), (sex, label, n)
    assert int(splits.test.labels.sum()) == round(0.2 * 118) + round(0.2 * 197) + round(0.2 * 59)
    assert not set(splits.test.ids) & set(splits.train.ids)
    assert Isic2017(root=str(ISIC2017), cache_dir=str(tmp_path), resolution=16).load(0).test.ids.tolist() == \
        splits.test.ids.tolist()  # seeded: the same cut again
    assert splits.train.images.std() > 20 and set(splits.train.attribute_vocab["age"]) == {"<40", "40-59", "60+"}
