"""The extent benchmark's generator (``bench/extent.py``): a band of a blade's colour is not evidence.

Before 2026-12-03 such a band was drawn only under blades, so the benchmark's classifiers learned
the band itself as unsafe. ``safe_band`` puts it on safe images too without changing the unsafe ones. ``cut`` puts objects across the
frame's edge without changing the images drawn without it. ``family="kit"`` draws another family of objects
(syringes and handguns among their own look-alikes) for cards that nothing was tuned on.
"""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture
def gen(extent_bench):
    return extent_bench


def _background(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(60, 200, size=(96, 128, 3), dtype=np.uint8)


def test_safe_band_leaves_unsafe_images_as_they_were(gen):
    for seed in range(4):
        a = gen.compose(_background(seed), np.random.default_rng(seed), n_unsafe=1, safe_band=0.0)
        b = gen.compose(_background(seed), np.random.default_rng(seed), n_unsafe=1, safe_band=1.0)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_safe_band_draws_a_harmless_band_of_a_blades_colour(gen):
    dark = np.full((96, 128, 3), 30, np.uint8)  # so that every pixel of a silver band stands out
    objects: list[dict] = []
    img, mask, kinds = gen.compose(dark, np.random.default_rng(0), n_unsafe=0, n_distractors=(0, 0),
                                   safe_band=1.0, objects=objects)
    plain, _, _ = gen.compose(dark, np.random.default_rng(0), n_unsafe=0, n_distractors=(0, 0),
                              safe_band=0.0)
    assert kinds == [] and not mask.any()  # nothing unsafe: no ground truth
    assert objects == [{"kind": "band", "band": True, "parts": {}}]
    changed = np.abs(img.astype(int) - plain.astype(int)).max(axis=2) > 20
    assert changed.any() and not changed.all()
    grey = img[changed].astype(int)
    assert grey.mean() > 100 and np.abs(grey[:, 0] - grey[:, 2]).mean() < 40  # silver-grey, as blades are
    # across the image through a random point: on average a good part of it, never all of it
    shares = []
    for seed in range(1, 13):
        img, _, _ = gen.compose(dark, np.random.default_rng(seed), n_unsafe=0, n_distractors=(0, 0), safe_band=1.0)
        shares.append((np.abs(img.astype(int) - 30).max(axis=2) > 20).mean())
    assert 0.1 < np.mean(shares) and max(shares) < 0.9


def test_cut_leaves_the_images_of_before_and_puts_objects_across_the_frame(gen):
    """``cut=0`` draws no random number (the images of every seed stay as they were); ``cut=1`` places each
    unsafe object across an edge: its ground truth reaches the frame, part of it lies outside, and it is
    recorded as cut."""
    touching = 0
    for seed in range(6):
        plain = gen.compose(_background(seed), np.random.default_rng(seed), n_unsafe=1)
        zero = gen.compose(_background(seed), np.random.default_rng(seed), n_unsafe=1, cut=0.0)
        assert np.array_equal(plain[0], zero[0]) and np.array_equal(plain[1], zero[1])
        objects: list[dict] = []
        img, mask, kinds = gen.compose(_background(seed), np.random.default_rng(seed), n_unsafe=2,
                                       n_distractors=(0, 0), cut=1.0, objects=objects)
        assert len(kinds) == 2 and mask.any()
        assert sorted(o["kind"] for o in objects) == sorted(kinds) and all(o.get("cut") for o in objects)
        edges = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
        touching += bool(edges.any())
    assert touching >= 5  # (an object drawn over by the other can, rarely, leave the frame's edge clear)


@pytest.mark.parametrize(("argv", "epochs", "batch"), [
    (["--arch", "mobilenet_v3_small"], "12", "64"),        # the recipes the benchmark's cards were trained with
    (["--arch", "resnet18"], "10", "64"),
    (["--arch", "regnet_x_400mf"], "12", "64"),            # any other: the default recipe
    (["--arch", "resnet18", "--epochs", "3", "--batch-size", "8"], "3", "8"),  # asked for: as asked
])
def test_train_uses_the_cards_recipe_unless_told(gen, monkeypatch, tmp_path, argv, epochs, batch):
    # `train --arch A` as the docs show it must train the card the docs measured: at the generic 6 epochs and
    # batch 32, MobileNet stayed at chance (test accuracy 0.53)
    calls = []
    monkeypatch.setattr(gen, "CACHE", tmp_path)
    monkeypatch.setattr(gen, "synthesize", lambda *a, **k: None)
    monkeypatch.setattr(gen.subprocess, "run", lambda cmd, **k: calls.append(cmd))
    gen.main(["train", *argv])
    (cmd,) = calls
    assert cmd[cmd.index("--epochs") + 1] == epochs and cmd[cmd.index("--batch-size") + 1] == batch
    assert cmd[cmd.index("--patience") + 1] == epochs


def test_harmless_records_the_distractors_without_changing_the_images(gen):
    """``harmless`` draws no random number (the images and ground truth of every seed stay as they were), and
    each distractor's mask lies where the image was painted, off the unsafe objects' ground truth."""
    painted = 0
    for seed in range(6):
        bg = _background(seed)
        plain = gen.compose(bg, np.random.default_rng(seed), n_unsafe=1, n_distractors=(2, 3))
        looks: list[np.ndarray] = []
        img, mask, kinds = gen.compose(bg, np.random.default_rng(seed), n_unsafe=1, n_distractors=(2, 3),
                                       harmless=looks)
        assert np.array_equal(plain[0], img) and np.array_equal(plain[1], mask) and plain[2] == kinds
        assert len(looks) in (2, 3) and all(d.shape == mask.shape and d.dtype == bool for d in looks)
        every = np.any(looks, axis=0)
        assert not (every & mask).any()  # (an unsafe object drawn over a distractor takes those pixels)
        changed = np.abs(img.astype(int) - bg.astype(int)).max(axis=2) > 0
        assert changed[every].mean() > 0.9  # (anti-aliased rims may match the ground by chance)
        painted += int(every.sum())
    assert painted > 0


def test_the_benchmark_set_carries_the_distractors(gen, monkeypatch):
    monkeypatch.setattr(gen, "backgrounds", lambda split, max_side=800: [_background(0)])
    items = gen.benchmark_set(3, 4, sides=(96,))
    assert all(it["distractors"].shape == it["mask"].shape for it in items)
    assert all(it["distractors"].any() for it in items)  # (the benchmark draws 1-3 per image)
    assert not any((it["distractors"] & it["mask"]).any() for it in items)


def test_an_image_of_a_seed_does_not_depend_on_how_many_are_drawn(gen, monkeypatch):
    # (what `run --ids` and `reasons` rely on: image i of a seed is drawn by the first i + 1 draws)
    monkeypatch.setattr(gen, "backgrounds", lambda split, max_side=800: [_background(0), _background(1)])
    few, more = gen.benchmark_set(5, 2, sides=(96,)), gen.benchmark_set(5, 4, sides=(96,))
    for a, b in zip(few, more[:2], strict=True):
        assert a["id"] == b["id"] and np.array_equal(a["image"], b["image"]) and np.array_equal(a["mask"], b["mask"])
    assert not np.array_equal(more[1]["image"], more[2]["image"])


def test_photo_makes_the_same_images_photographic_with_their_masks_unchanged(gen, monkeypatch):
    yy, xx = np.mgrid[0:120, 0:160]  # (a smooth photo: JPEG would move a noise background's pixels most)
    smooth = np.stack([60 + xx // 2, 90 + yy // 2, 120 + 0 * xx], axis=2).astype(np.uint8)
    monkeypatch.setattr(gen, "backgrounds", lambda split, max_side=800: [smooth])
    plain = gen.benchmark_set(5, 3, sides=(96, 160))
    photo, again = gen.benchmark_set(5, 3, sides=(96, 160), photo=True), gen.benchmark_set(5, 3, sides=(96, 160),
                                                                                             photo=True)
    for a, b, c in zip(plain, photo, again, strict=True):
        assert a["id"] == b["id"] and a["kinds"] == b["kinds"]
        assert np.array_equal(a["mask"], b["mask"]) and np.array_equal(a["distractors"], b["distractors"])
        assert np.array_equal(b["image"], c["image"])  # (its own seeded stream: drawn the same each time)
        assert b["image"].shape == a["image"].shape and b["image"].dtype == np.uint8
        moved = np.abs(b["image"].astype(int) - a["image"].astype(int)).mean(axis=2)
        planted = a["mask"] | a["distractors"]
        # the planted shapes are shaded and grained, the rest only noised and compressed
        assert moved[planted].mean() > moved[~planted].mean() > 0
        # no longer flat: each object's own colours spread far more than a drawn flat colour does
        assert b["image"][a["mask"]].std(axis=0).mean() > a["image"][a["mask"]].std(axis=0).mean()


def test_photo_is_for_the_drawn_families_only(gen):
    with pytest.raises(SystemExit, match="--photo"):
        gen.draw_set(3, 2, data="mark", photo=True)


def test_items_by_id_draws_each_seed_once_up_to_its_last_image(gen, monkeypatch):
    calls = []

    def drawn(seed, n, cut=0.0, family="objects", photo=False):
        calls.append((seed, n, cut))
        return [{"id": f"{seed}-{i:03d}"} for i in range(n)]

    monkeypatch.setattr(gen, "benchmark_set", drawn)
    items = gen.items_by_id(["5-002", "3-000", "5-002", "5-1"], cut=0.5)
    assert [it["id"] for it in items] == ["5-002", "3-000", "5-001"]  # (the order given, each once)
    assert sorted(calls) == [(3, 1, 0.5), (5, 3, 0.5)]
    monkeypatch.setattr(gen, "mark_set", lambda seed, n: [{"id": f"mark {seed}-{i}"} for i in range(n)])
    assert [it["id"] for it in gen.items_by_id(["7-001"], data="mark")] == ["mark 7-1"]
    with pytest.raises(SystemExit, match="SEED-INDEX"):
        gen.items_by_id(["2024"])


def test_run_with_ids_evaluates_only_those_images(gen, monkeypatch, tmp_path, capsys):
    import veil.classify

    monkeypatch.setattr(gen, "benchmark_set",
                        lambda seed, n, cut=0.0, family="objects", photo=False: [{"id": f"{seed}-{i:03d}"} for i in range(n)])
    monkeypatch.setattr(veil.classify, "load_classifier", lambda path: object())
    seen = []

    def evaluate(clf, items, extent, seg, *a):
        seen.append([it["id"] for it in items])
        return gen.summarize([]), []

    monkeypatch.setattr(gen, "evaluate", evaluate)
    gen.main(["run", "--archs", "resnet18", "--extents", "object", "--ids", "11-007", "12-003",
              "--json", str(tmp_path / "r.json")])
    assert seen == [["11-007", "12-003"]]
    assert "2 unsafe images (objects data, images 11-007 12-003" in capsys.readouterr().out


def test_cards_joined_by_a_plus_run_together_in_one_pipeline(gen, monkeypatch, tmp_path, capsys):
    from types import SimpleNamespace

    import veil.classify
    import veil.pipeline

    monkeypatch.setattr(gen, "benchmark_set",
                        lambda seed, n, cut=0.0, family="objects", photo=False: [{"id": f"{seed}-{i:03d}", "image": None}
                                                                                 for i in range(n)])
    loaded = []

    def load(path):  # (every benchmark card is named "model" by its file)
        loaded.append(path)
        return SimpleNamespace(name="model", path=path)

    monkeypatch.setattr(veil.classify, "load_classifier", load)
    built = []

    class Recorder:  # (the pipeline evaluate builds: which models, in which order)
        def __init__(self, cfg, classifiers):
            built.append(([c.name for c in cfg.models], [c.name for c in classifiers]))

        def run(self, image):
            return SimpleNamespace(unsafe=False)  # (not flagged: no row to score)

    monkeypatch.setattr(veil.pipeline, "Safeguarder", Recorder)
    gen.main(["run", "--archs", "resnet18+mobilenet_v3_small", "--extents", "object", "--ids", "11-007",
              "--json", str(tmp_path / "r.json")])
    assert [p.split("/")[-2] for p in loaded] == ["resnet18", "mobilenet_v3_small"]
    both = ["resnet18", "mobilenet_v3_small"]
    assert built == [(both, both)]  # one pipeline with both cards, each named by its folder
    assert "| resnet18+mobilenet_v3_small | object |" in capsys.readouterr().out
    one = gen.load_cards("resnet18")  # (one card keeps its own name)
    assert [c.name for c in one] == ["model"]
    with pytest.raises(SystemExit, match="no card"):
        gen.load_cards("+")
    with pytest.raises(SystemExit, match="different names"):  # (two cards of one folder: named alike)
        gen.load_cards("resnet18+resnet18")
    assert gen.card_name("resnet18+") == "resnet18"


def test_the_kit_family_plants_syringes_and_handguns_with_their_parts(gen):
    """Every planted object of the kit family is a syringe (plunger, barrel, needle) or a handgun (slide, grip); the
    parts lie inside the ground truth, cover most of it, and the needle is a small part of its syringe."""
    kinds_seen, needle_shares = set(), []
    for seed in range(8):
        bg = np.random.default_rng(seed).integers(60, 200, size=(192, 256, 3), dtype=np.uint8)
        objects: list[dict] = []
        looks: list[np.ndarray] = []
        img, mask, kinds = gen.compose(bg, np.random.default_rng(seed), n_unsafe=2, family="kit", objects=objects,
                                       harmless=looks)
        assert set(kinds) <= {"syringe", "pistol"} and len(objects) == 2
        assert sorted(o["kind"] for o in objects) == sorted(kinds)
        union = np.zeros(mask.shape, bool)
        for o in objects:
            want = {"syringe": {"plunger", "barrel", "needle"}, "pistol": {"slide", "grip"}}[o["kind"]]
            assert set(o["parts"]) == want
            covered = np.zeros(mask.shape, int)
            for part in o["parts"].values():
                assert not (part & ~mask).any()  # (a part is ground truth, less what is drawn over it)
                union |= part
                covered += part
            assert covered.max() <= 1  # (no pixel belongs to two parts of one object)
            if o["kind"] == "syringe" and not o["band"]:
                total = sum(int(v.sum()) for v in o["parts"].values())
                if total:
                    needle_shares.append(o["parts"]["needle"].sum() / total)
        assert union.sum() >= 0.9 * mask.sum()
        assert not any((d & mask).any() for d in looks)
        kinds_seen |= set(kinds)
    assert kinds_seen == {"syringe", "pistol"}
    assert needle_shares and 0.0 < float(np.median(needle_shares)) < 0.15


def _digest(gen, **kw) -> str:
    """A checksum of what ``compose`` draws on six seeds: images, ground truth, kinds, parts and look-alikes."""
    import hashlib

    h = hashlib.sha256()
    for seed in range(6):
        bg = np.random.default_rng(seed).integers(60, 200, size=(96, 128, 3), dtype=np.uint8)
        objects: list[dict] = []
        looks: list[np.ndarray] = []
        img, mask, kinds = gen.compose(bg, np.random.default_rng(seed), n_unsafe=1 + seed % 2, n_distractors=(1, 3),
                                       objects=objects, harmless=looks, **kw)
        h.update(img.tobytes())
        h.update(mask.tobytes())
        h.update(" ".join(kinds).encode())
        for o in objects:
            h.update(o["kind"].encode())
            h.update(bytes([o["band"]]))
            for k in sorted(o["parts"]):
                h.update(k.encode())
                h.update(o["parts"][k].tobytes())
        for d in looks:
            h.update(d.tobytes())
    return h.hexdigest()


def test_the_objects_family_draws_the_images_it_always_drew(gen):
    """The bombs and blades every number of issue #12 was measured on are drawn as before the kit family was added
    (the checksum of commit fb5b416's ``compose`` on these seeds), by default and when named."""
    before = "c312829d2878bf44755c7453fd1540bb3a4353d3a0cee90138a557a40a451027"
    assert _digest(gen) == before
    assert _digest(gen, family="objects") == before
    with pytest.raises(ValueError, match="family"):
        gen.compose(_background(0), np.random.default_rng(5), n_unsafe=1, family="toys")


def test_the_kit_family_draws_its_own_look_alikes_and_bands(gen, monkeypatch):
    """The kit family's safe images hold pens and L brackets (and no unsafe object), and its harmless band has a
    syringe barrel's colour, not a blade's; ``safe_set`` draws the family it is asked for."""
    drawn = {"pen": 0, "bracket": 0}
    for name in drawn:
        real = getattr(gen, f"draw_{name}")
        monkeypatch.setattr(gen, f"draw_{name}", lambda *a, _real=real, _name=name, **k: (
            drawn.__setitem__(_name, drawn[_name] + 1), _real(*a, **k))[1])
    bg = _background(0)
    for seed in range(12):
        looks: list[np.ndarray] = []
        _, mask, kinds = gen.compose(bg, np.random.default_rng(seed), n_unsafe=0, n_distractors=(3, 3), family="kit",
                                     harmless=looks)
        assert not mask.any() and kinds == [] and len(looks) == 3
    assert drawn["pen"] >= 3 and drawn["bracket"] >= 3
    dark = np.full((96, 128, 3), 30, np.uint8)
    with monkeypatch.context() as m:  # (the barrel's colour made green, so that the band shows whose colour it has)
        m.setattr(gen, "_pale", lambda rng: (20, 220, 20))
        img, _, _ = gen.compose(dark, np.random.default_rng(0), n_unsafe=0, n_distractors=(0, 0), safe_band=1.0,
                                family="kit")
    band = img[np.abs(img.astype(int) - 30).max(axis=2) > 20].astype(int)
    assert len(band) > 100 and band[:, 1].mean() > 150 and band[:, 0].mean() < 60  # (a barrel's colour)
    monkeypatch.setattr(gen, "backgrounds", lambda split, max_side=800: [_background(1)])
    before = dict(drawn)
    gen.safe_set(3, 6, sides=(96,))
    assert drawn == before  # (the objects family: no pen, no bracket)
    gen.safe_set(3, 6, sides=(96,), family="kit")
    assert sum(drawn.values()) > sum(before.values())


def test_train_and_run_take_the_kit_family(gen, monkeypatch, tmp_path, capsys):
    """`train --data kit` synthesizes the kit family into its own folder; `run --data kit` draws kit images."""
    made = []
    monkeypatch.setattr(gen, "CACHE", tmp_path)
    sizes: list[tuple[int, str]] = []
    monkeypatch.setattr(gen, "synthesize", lambda out, n, *a, **k: (made.append((out.name, k.get("family"))),
                                                                      sizes.append((n, out.name))))
    outs, epochs = [], []
    monkeypatch.setattr(gen.subprocess, "run", lambda cmd, **k: (outs.append(cmd[cmd.index("--out") + 1]),
                                                                 epochs.append(cmd[cmd.index("--epochs") + 1])))
    gen.main(["train", "--data", "kit", "--arch", "mobilenet_v3_small", "--name", "kit-mb"])
    gen.main(["train", "--data", "kit", "--arch", "resnet18"])  # (never the folder of the benchmark's own card)
    gen.main(["train", "--arch", "mobilenet_v3_small"])
    assert made == [("data-kit", "kit"), ("data-kit", "kit"), ("data", "objects")]
    assert [o.split("/")[-2] for o in outs] == ["kit-mb", "kit-resnet18", "mobilenet_v3_small"]
    assert [n for n, _ in sizes] == [8000, 8000, 3000]  # (the kit cards' 8,000 images; the objects cards' 3,000)
    assert epochs == ["24", "10", "12"]  # (MobileNet's kit recipe; ResNet-18's and MobileNet's own elsewhere)
    drawn = []
    monkeypatch.setattr(gen, "benchmark_set", lambda seed, n, cut=0.0, family="objects", photo=False: drawn.append(family) or [])
    monkeypatch.setattr(gen, "load_cards", lambda arch: [])
    monkeypatch.setattr(gen, "evaluate", lambda *a: (gen.summarize([]), []))
    gen.main(["run", "--data", "kit", "--archs", "x", "--extents", "object", "--seeds", "3", "--n", "2",
              "--json", str(tmp_path / "r.json")])
    assert drawn == ["kit"] and "(kit data, seeds [3]" in capsys.readouterr().out


def test_handguns_are_placed_by_their_full_reach(gen):
    """Without ``cut`` no handgun touches the frame's edge: it is placed by its grip's far corner (the kit family's
    second drawing; the first placed it by 0.55 of its length and about 7 % of the handguns touched the edge)."""
    canvas = gen.Canvas(np.zeros((101, 101, 3), np.uint8))
    reach = 0.0
    for angle in np.linspace(-0.7, 0.7, 7):  # (the drawing's own extent, on a handgun of size 40 at the centre)
        a = gen.draw_pistol(canvas, np.random.default_rng(0), 50.0, 50.0, 40.0, float(angle)) > 0.5
        ys, xs = np.nonzero(a)
        reach = max(reach, float(np.hypot(ys - 50.0, xs - 50.0).max()))
    assert reach <= gen.PISTOL_REACH * 40 + 1.5
    touched = pistols = 0
    for seed in range(40):
        bg = np.random.default_rng(seed).integers(60, 200, size=(128, 192, 3), dtype=np.uint8)
        objects: list[dict] = []
        gen.compose(bg, np.random.default_rng(seed), n_unsafe=2, family="kit", objects=objects)
        for o in objects:
            if o["kind"] == "pistol":
                m = np.any(list(o["parts"].values()), axis=0)
                pistols += 1
                touched += bool(np.concatenate([m[0], m[-1], m[:, 0], m[:, -1]]).any())
    assert pistols >= 20 and touched == 0


def test_training_data_of_an_older_drawing_is_drawn_again(gen, monkeypatch, tmp_path):
    """``synthesize`` stamps the family's drawing: kit data drawn before handguns were placed by their reach (a stamp
    without ``drawing``) is drawn again, with none of its images left over, and data of the current drawing is
    kept."""
    monkeypatch.setattr(gen, "backgrounds", lambda split, max_side=500: [_background(1)])
    out = tmp_path / "data-kit"
    (out / "unsafe").mkdir(parents=True)
    (out / "DONE.json").write_text('{"n": 6, "seed": 0, "side": 96, "safe_band": 0.2, "family": "kit"}')
    (out / "unsafe" / "00005.png").write_bytes(b"an image of the drawing before")
    gen.synthesize(out, 4, 0, 96, family="kit")
    assert sorted(f.name for f in (out / "unsafe").glob("*.png")) == ["00001.png", "00003.png"]  # (none of before)
    stamp = (out / "DONE.json").read_text()
    assert '"drawing": 2' in stamp
    first = (out / "unsafe" / "00001.png").stat().st_mtime_ns
    gen.synthesize(out, 4, 0, 96, family="kit")
    assert (out / "unsafe" / "00001.png").stat().st_mtime_ns == first
    objects = tmp_path / "data"  # (the bombs and blades keep the stamp of before: their cached data is not redrawn)
    gen.synthesize(objects, 2, 0, 96)
    assert json.loads((objects / "DONE.json").read_text()) == {"n": 2, "seed": 0, "side": 96, "safe_band": 0.2}


def test_photo_training_data_is_the_same_layouts_made_photographic(gen, monkeypatch, tmp_path):
    """``synthesize(photo=share)`` makes that share of the training images photographic, safe and unsafe alike, each
    from its own stream: the layouts are those drawn without, and ``photo=0`` draws the images of before."""
    yy, xx = np.mgrid[0:120, 0:160]  # (a smooth photo, as in the benchmark's --photo test)
    smooth = np.stack([60 + xx // 2, 90 + yy // 2, 120 + 0 * xx], axis=2).astype(np.uint8)
    monkeypatch.setattr(gen, "backgrounds", lambda split, max_side=500: [smooth])
    from PIL import Image

    def images(out):
        return {f"{c}/{f.name}": np.asarray(Image.open(f)).astype(int)
                for c in ("safe", "unsafe") for f in sorted((out / c).glob("*.png"))}

    gen.synthesize(tmp_path / "plain", 8, 0, 96)
    gen.synthesize(tmp_path / "all", 8, 0, 96, photo=1.0)
    gen.synthesize(tmp_path / "none", 8, 0, 96, photo=0.0)
    plain, photo, none = images(tmp_path / "plain"), images(tmp_path / "all"), images(tmp_path / "none")
    assert plain.keys() == photo.keys() and len(plain) == 8
    assert all(np.array_equal(plain[k], none[k]) for k in plain)
    for k in plain:  # (the same layout: the photographic image differs by the light, grain, noise and JPEG only)
        assert plain[k].shape == photo[k].shape and 0 < np.abs(plain[k] - photo[k]).mean() < 12
    assert json.loads((tmp_path / "all" / "DONE.json").read_text())["photo"] == 1.0
    assert "photo" not in json.loads((tmp_path / "plain" / "DONE.json").read_text())
    gen.synthesize(tmp_path / "half", 40, 0, 96, photo=0.5)
    gen.synthesize(tmp_path / "plain40", 40, 0, 96)
    half, plain40 = images(tmp_path / "half"), images(tmp_path / "plain40")
    changed = sum(not np.array_equal(half[k], plain40[k]) for k in half)
    assert 8 <= changed <= 32  # (about half of them)


def test_train_photo_takes_folders_of_its_own(gen, monkeypatch, tmp_path):
    monkeypatch.setattr(gen, "CACHE", tmp_path)
    made, outs = [], []
    monkeypatch.setattr(gen, "synthesize", lambda out, n, *a, **k: made.append((out.name, k.get("photo"))))
    monkeypatch.setattr(gen.subprocess, "run", lambda cmd, **k: outs.append(cmd[cmd.index("--out") + 1]))
    gen.main(["train", "--arch", "resnet18", "--photo", "0.5"])
    gen.main(["train", "--data", "kit", "--arch", "resnet18", "--photo"])
    gen.main(["train", "--arch", "resnet18"])
    gen.main(["train", "--arch", "resnet18", "--photo", "0.5", "--name", "rn-photo20"])  # (the name is the card's)
    assert made == [("data-photo", 0.5), ("data-kit-photo", 1.0), ("data", 0.0), ("data-photo", 0.5)]
    assert [o.split("/")[-2] for o in outs] == ["resnet18-photo", "kit-resnet18-photo", "resnet18", "rn-photo20"]
    for bad in ("-0.5", "2"):
        with pytest.raises(SystemExit, match="share"):
            gen.main(["train", "--arch", "resnet18", "--photo", bad])


def test_show_draws_the_photographic_set_with_photo(gen, monkeypatch, tmp_path):
    import veil.classify

    asked = []

    class Drawn(Exception):
        pass

    def drawn(seed, n, cut=0.0, family="objects", photo=False):
        asked.append((seed, n, photo))
        raise Drawn

    monkeypatch.setattr(veil.classify, "load_classifier", lambda path: None)
    monkeypatch.setattr(gen, "benchmark_set", drawn)
    for extra in ([], ["--photo"]):
        with pytest.raises(Drawn):
            gen.main(["show", "--seed", "2025", "--ids", "2025-013", "--out", str(tmp_path / "s.png"), *extra])
    assert asked == [(2025, 40, False), (2025, 40, True)]


def test_an_image_obscured_for_an_error_is_counted_apart_from_one_without_a_counterfactual(gen, monkeypatch, tmp_path,
                                                                                          capsys):
    """``summarize``'s ``failed``: flagged images delivered fully obscured for an error (the delivered image, judged
    at its own size, still unsafe), not for want of a counterfactual; ``run`` lists them under its table."""
    rest = {"verified": False, "depth": None, "area": 1.0, "seconds": 1.0, "evaluated": 9}
    per = [{"id": "1-000", "found": False, "error": "delivered image still classified unsafe", **rest},
           {"id": "1-001", "found": False, "error": None, **rest},  # (no counterfactual: fully obscured, no error)
           {"id": "1-002", "found": True, "error": None, "recall": 1.0, "ratio": 1.0, "precision": 1.0,
            **{**rest, "verified": True, "depth": 2, "area": 0.1}}]
    m = gen.summarize(per)
    assert m["failed"] == pytest.approx(1 / 3) and m["cf"] == pytest.approx(1 / 3)
    assert gen.summarize(per[1:])["failed"] == 0.0
    monkeypatch.setattr(gen, "benchmark_set", lambda seed, n, cut=0.0, family="objects", photo=False:
                        [{"id": f"{seed}-{i:03d}"} for i in range(n)])
    monkeypatch.setattr(gen, "load_cards", lambda arch: [])
    monkeypatch.setattr(gen, "evaluate", lambda *a: (gen.summarize(per), per))
    gen.main(["run", "--archs", "x", "--extents", "object", "--seeds", "1", "--n", "3",
              "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert "* x / object / bass: 1-000 (delivered image still classified unsafe)" in out
    assert "1-001 (" not in out and "1-002 (" not in out


def test_evaluate_records_the_pipelines_error(gen, monkeypatch):
    """``evaluate`` keeps each flagged image's error (None when there is none)."""
    from types import SimpleNamespace

    import veil.pipeline

    results = iter([SimpleNamespace(unsafe=True, counterfactual_found=False, models_after=[], fail_closed=True,
                                    error="delivered image still classified unsafe", depth=None,
                                    obfuscated_fraction=1.0, n_evaluated=5),
                    SimpleNamespace(unsafe=False)])
    monkeypatch.setattr(veil.pipeline, "Safeguarder",
                        lambda cfg, classifiers: SimpleNamespace(run=lambda image: next(results)))
    items = [{"id": f"1-00{i}", "kinds": ["bomb"], "image": np.zeros((8, 8, 3), np.uint8),
              "mask": np.ones((8, 8), bool)} for i in range(2)]
    m, per = gen.evaluate([object()], items, "object", "bass")
    assert [r["id"] for r in per] == ["1-000"] and per[0]["error"] == "delivered image still classified unsafe"
    assert m["failed"] == 1.0 and m["cf"] == 0.0
