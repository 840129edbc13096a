"""PerspectiveVision-style LoRA fine-tuning of a local VLM into a safety moderator.

The base model (a LLaVA-style folder; Qwen2-VL and InstructBLIP work too) is
loaded by the VLM transport :class:`veil.vlm.hf.TransformersVLM`,
wrapped with a peft LoRA adapter on the language model's attention projections,
and trained on prompts from :func:`veil.moderator.sampler.sample_prompts`:
each lists a random subset of categories with definitions and the target is
``Safety Status: Safe, Unsafe Category: None`` or ``… Unsafe, Unsafe Category: <c>``.
The loss covers the answer tokens (and ``</s>``) only.

Training is seeded (same seed, same data → same prompts and same LoRA init),
runs in :func:`veil.training.loop.fit` (progress bar, checkpoints) and is
resumable: every ``save_every`` steps and at each epoch's end the adapter, the
optimizer and the loop state go to ``OUT/checkpoint``; a second run with the
same settings continues from that step, inside its epoch (``resume=False``
starts over; the rule is :mod:`veil.training.loop`'s).

Outputs in ``OUT``: ``adapter/`` (peft), ``moderator.json`` (a ``"vlm-lora"``
model card for ``--model``), ``train_moderator.json`` (the report).

Data (:func:`load_records`): a folder of UnsafeBench parquet files (columns
``image``, ``safety_label``, ``category``, ``source``; needs ``pyarrow``) or a
JSONL / CSV manifest with the same keys, ``image`` a path relative to the manifest.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from veil.errors import InvalidParameterError, ModelLoadError, require
from veil.moderator.sampler import (
    Sample,
    category_definitions,
    normalize_safety_label,
    sample_prompts,
)
from veil.training.cards import write_card, write_json_atomic
from veil.training.data import read_manifest
from veil.training.loop import check_checkpoint, fit, new_loop_state, optimizer_step
from veil.training.progress import make_progress

__all__ = ["DEFAULT_TARGET_MODULES", "load_records", "train_moderator"]

#: LoRA goes on the language model's attention projections (not the vision tower).
DEFAULT_TARGET_MODULES = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"

_KEYS = ("image", "safety_label", "category")


def _check_record(rec: Mapping[str, Any], where: str) -> dict[str, Any]:
    missing = [k for k in _KEYS if rec.get(k) is None or rec.get(k) == ""]
    if missing:
        raise InvalidParameterError(f"{where}: missing {missing}; each record needs {list(_KEYS)} (and optionally 'source')")
    try:
        label = normalize_safety_label(rec["safety_label"])
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"{where}: {exc}") from None
    return {"image": rec["image"], "safety_label": label, "category": str(rec["category"]),
            "source": None if rec.get("source") in (None, "") else str(rec["source"])}


def _parquet_image(value: Any, base: Path) -> Any:
    if isinstance(value, Mapping):  # Hugging Face datasets' Image feature
        if value.get("bytes"):
            return bytes(value["bytes"])
        value = value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str) and value:
        p = Path(value)
        return str(p if p.is_absolute() else base / p)
    return None


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """Read an UnsafeBench-layout dataset into ``{image, safety_label, category, source}`` records.

    ``image`` becomes a file path (relative paths resolved against the manifest) or the
    encoded bytes of a parquet ``image`` column; ``safety_label`` becomes ``"safe"`` /
    ``"unsafe"``. Images are decoded only when used.

    Parameters
    ----------
    path : path
        A ``.jsonl`` / ``.csv`` manifest, one ``.parquet`` file, or a folder of parquet files
        (searched recursively) or holding one ``*.jsonl`` / ``*.csv`` manifest.

    Raises
    ------
    InvalidParameterError
        Naming the file and row of a malformed record.
    """
    p = Path(path)
    if not p.exists():
        raise InvalidParameterError(f"training data {str(path)!r} does not exist")
    if p.is_dir():
        files = sorted(p.rglob("*.parquet"))
        if not files:
            manifests = sorted([*p.glob("*.jsonl"), *p.glob("*.csv")])
            if len(manifests) != 1:
                raise InvalidParameterError(
                    f"training folder {str(p)!r} holds no parquet files and {len(manifests)} manifests "
                    "(*.jsonl / *.csv); pass the manifest itself"
                )
            return load_records(manifests[0])
    else:
        files = [p]
    out: list[dict[str, Any]] = []
    for f in files:
        suffix = f.suffix.lower()
        if suffix == ".parquet":
            pq: Any = require("pyarrow.parquet", "vlm")
            rows = pq.read_table(str(f)).to_pylist()
            for n, row in enumerate(rows):
                rec = dict(row)
                rec["image"] = _parquet_image(rec.get("image"), f.parent)
                out.append(_check_record(rec, f"{f}: row {n}"))
        elif suffix in (".jsonl", ".json", ".csv"):
            for n, rec in read_manifest(f):
                rec["image"] = _parquet_image(rec.get("image"), f.parent)
                out.append(_check_record(rec, f"{f}:{n}"))
        else:
            raise InvalidParameterError(
                f"training data {str(f)!r}: expected .parquet, .jsonl or .csv, got {suffix or 'no suffix'!r}"
            )
    if not out:
        raise InvalidParameterError(f"training data {str(path)!r} holds no records")
    return out


def _image(record: Mapping[str, Any]) -> np.ndarray:
    from veil.image import load_image

    return load_image(record["image"])


def _summary(records: Sequence[Mapping[str, Any]], samples: Sequence[Sample]) -> dict[str, Any]:
    return {
        "records": len(records),
        "safe": sum(r["safety_label"] == "safe" for r in records),
        "unsafe": sum(r["safety_label"] == "unsafe" for r in records),
        "categories": dict(sorted(Counter(str(r["category"]) for r in records).items())),
        "sources": dict(sorted(Counter(str(r.get("source")) for r in records).items())),
        "samples_per_epoch": len(samples),
        "sample_kinds": dict(sorted(Counter(s.kind for s in samples).items())),
    }


def _fingerprint(records: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for r in records:
        img = r["image"]
        h.update((hashlib.sha256(img).hexdigest() if isinstance(img, bytes) else str(img)).encode())
        h.update(f"|{r['safety_label']}|{r['category']}".encode())
    return h.hexdigest()[:16]


class _Encoder:
    """Token ids, labels (answer only) and image tensors for one sample."""

    def __init__(self, backend: Any, records: Sequence[Mapping[str, Any]], max_length: int | None) -> None:
        self.backend = backend
        self.records = records
        self.max_length = max_length
        tok = backend.tokenizer
        self.eos = tok.eos_token_id
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.pad = int(pad if pad is not None else 0)

    def __call__(self, sample: Sample) -> dict[str, Any]:
        import torch

        b = self.backend
        enc = b.encode(_image(self.records[sample.index]), b.format_prompt(sample.prompt),
                       qformer=sample.prompt, continuation=sample.target, to_device=False)
        n_answer = len(b.tokenizer(" " + sample.target.strip(), add_special_tokens=False)["input_ids"])
        ids = enc["input_ids"][0]
        mask = enc["attention_mask"][0]
        if self.eos is not None:
            ids = torch.cat([ids, torch.tensor([int(self.eos)], dtype=ids.dtype)])
            mask = torch.cat([mask, torch.ones(1, dtype=mask.dtype)])
            n_answer += 1
        labels = torch.full_like(ids, -100)
        labels[-n_answer:] = ids[-n_answer:]
        if self.max_length is not None and ids.shape[0] > self.max_length:
            raise InvalidParameterError(
                f"a training sequence has {ids.shape[0]} tokens, over max_length {self.max_length}; "
                "raise max_length or list fewer categories per prompt (n_categories)"
            )
        item = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
        item.update(input_ids=ids, attention_mask=mask, labels=labels)
        return item

    def collate(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        out: dict[str, Any] = {}
        width = max(int(it["input_ids"].shape[0]) for it in items)
        for key, fill in (("input_ids", self.pad), ("attention_mask", 0), ("labels", -100)):
            t = torch.full((len(items), width), fill, dtype=items[0][key].dtype)
            for i, it in enumerate(items):
                t[i, : it[key].shape[0]] = it[key]
            out[key] = t
        for key in items[0]:
            if key in out:
                continue
            if key.startswith("qformer_"):
                w = max(int(it[key].shape[-1]) for it in items)
                fill = 0
                t = torch.full((len(items), w), fill, dtype=items[0][key].dtype)
                for i, it in enumerate(items):
                    t[i, : it[key].shape[-1]] = it[key][0]
                out[key] = t
            else:  # pixel_values, image_grid_thw, …: stacked along the batch / patch axis
                out[key] = torch.cat([it[key] for it in items], dim=0)
        return out


def _to(batch: Mapping[str, Any], device: str, dtype: Any) -> dict[str, Any]:
    moved = {k: v.to(device) for k, v in batch.items()}
    if "pixel_values" in moved and moved["pixel_values"].is_floating_point():
        moved["pixel_values"] = moved["pixel_values"].to(dtype)
    return moved


def _check_options(*, epochs: int, lora_r: int, batch_size: int, save_every: int, probe: int,
                   max_steps: int | None, lr: float, lora_dropout: float) -> None:
    """Check :func:`train_moderator`'s options before any work, naming the option and the value."""
    for name, value, lo in (("epochs", epochs, 1), ("lora_r", lora_r, 1), ("batch_size", batch_size, 1),
                            ("save_every", save_every, 1), ("probe", probe, 0)):
        if isinstance(value, bool) or int(value) < lo:
            raise InvalidParameterError(f"{name} must be an integer >= {lo}, got {value!r}")
    if max_steps is not None and int(max_steps) < 1:
        raise InvalidParameterError(f"max_steps must be >= 1, got {max_steps}")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise InvalidParameterError(f"lr must be a positive number, got {lr!r}")
    if not 0.0 <= float(lora_dropout) < 1.0:
        raise InvalidParameterError(f"lora_dropout must lie in [0, 1), got {lora_dropout}")


def _records(data: str | Path | Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """The checked records of ``data`` and the resolved data path (None for records passed in)."""
    if isinstance(data, (str, Path)):
        return load_records(data), str(Path(data).resolve())
    records = [_check_record(r, f"record {i}") for i, r in enumerate(data)]
    if not records:
        raise InvalidParameterError("data holds no records")
    return records, None


def _restore(ckpt: Path, config: Mapping[str, Any], fingerprint: str, model: Any, opt: Any, *, per_epoch: int,
             device: Any) -> tuple[dict[str, Any], list[float]]:
    """Load ``OUT/checkpoint`` into the LoRA model and the optimizer; returns the loop state and the losses.

    The checkpoint must come from a run with the same settings and data (the resume rule of
    :mod:`veil.training.loop`).
    """
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    saved = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
    if saved.get("fingerprint") != fingerprint:
        check_checkpoint(saved.get("config"), config, str(ckpt))
    set_peft_model_state_dict(model, load_file(str(ckpt / "adapter_model.safetensors")))
    opt.load_state_dict(torch.load(str(ckpt / "optimizer.pt"), map_location=device))
    epoch, within = divmod(int(saved["step"]), per_epoch)  # a checkpoint from before the loop state was saved
    loop_state = saved.get("loop") or {**new_loop_state(), "step": int(saved["step"]), "epoch": epoch, "batch": within}
    return loop_state, list(saved["losses"])


def train_moderator(
    data: str | Path | Sequence[Mapping[str, Any]],
    *,
    base_model: str | Path,
    out: str | Path,
    epochs: int = 1,
    lr: float = 2e-4,
    lora_r: int = 8,
    lora_alpha: float | None = None,
    lora_dropout: float = 0.05,
    target_modules: str | Sequence[str] | None = None,
    max_steps: int | None = None,
    batch_size: int = 1,
    seed: int = 0,
    categories: Sequence[str] | Mapping[str, str] | None = None,
    n_categories: int | tuple[int, int] | None = None,
    negative_rate: float = 0.5,
    balance: bool = True,
    save_every: int = 50,
    resume: bool = True,
    probe: int = 8,
    max_length: int | None = None,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """LoRA-fine-tune a local VLM into a PerspectiveVision-style moderator.

    Parameters
    ----------
    data : path or list of records
        An UnsafeBench-layout dataset (see :func:`load_records`) or records already loaded.
    base_model : path
        Local model folder (config, weights, processor); nothing is downloaded.
    out : path
        Output folder: ``adapter/``, ``moderator.json`` (the ``"vlm-lora"`` card),
        ``train_moderator.json`` and ``checkpoint/``.
    epochs, lr, max_steps, batch_size : int, float, int or None, int
        Passes over the sampled prompts, AdamW learning rate, step cap, samples per step.
    lora_r, lora_alpha, lora_dropout : int, float, float
        LoRA rank, scale (default ``2 * lora_r``) and dropout.
    target_modules : str or list of str, optional
        peft ``target_modules`` (a regex string or names); default
        :data:`DEFAULT_TARGET_MODULES`.
    seed : int
        Seeds the prompt sampling (per epoch), the LoRA initialization and dropout.
    categories, n_categories, negative_rate, balance
        Passed to :func:`veil.moderator.sampler.sample_prompts`; default categories:
        UnsafeBench's eleven.
    save_every : int
        Checkpoint interval in steps.
    resume : bool
        Continue from ``OUT/checkpoint`` when its settings and data match.
    probe : int
        Number of fixed samples whose mean loss is reported before and after training
        (``loss_before`` / ``loss_after``); 0 skips it.
    max_length : int, optional
        Refuse sequences longer than this.
    device : str, optional
        torch device; default ``"cuda"`` when available.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        The report also written to ``train_moderator.json``: ``steps``, ``losses``,
        ``loss_before``, ``loss_after``, ``resumed_from``, ``card``, ``adapter``,
        ``data`` (summary), settings and ``seconds``.

    Examples
    --------
    >>> train_moderator("unsafebench/", base_model="llava-1.5-7b-hf", out="mod")  # doctest: +SKIP
    """
    t_start = time.monotonic()
    torch: Any = require("torch", "vlm")
    peft: Any = require("peft", "vlm")
    from veil.classify.vlm import check_vlm_card_type
    from veil.vlm.hf import TransformersVLM

    _check_options(epochs=epochs, lora_r=lora_r, batch_size=batch_size, save_every=save_every, probe=probe,
                   max_steps=max_steps, lr=lr, lora_dropout=lora_dropout)
    records, data_name = _records(data)
    defs = category_definitions(categories)
    sampling = {"categories": defs, "n_categories": n_categories, "negative_rate": float(negative_rate),
                "balance": bool(balance)}

    def epoch_samples(epoch: int) -> list[Sample]:
        return sample_prompts(records, rng=np.random.default_rng([int(seed), epoch]), **sampling)  # type: ignore[arg-type]

    first = epoch_samples(0)
    per_epoch = math.ceil(len(first) / int(batch_size))

    base_path = Path(base_model).expanduser().resolve()
    backend = TransformersVLM(base_path, device=device)
    alpha = float(2 * int(lora_r) if lora_alpha is None else lora_alpha)
    targets: Any = DEFAULT_TARGET_MODULES if target_modules is None else (
        target_modules if isinstance(target_modules, str) else list(target_modules))
    settings = {"base_model": str(base_path), "lr": float(lr), "lora_r": int(lora_r), "lora_alpha": alpha,
                "lora_dropout": float(lora_dropout), "target_modules": targets, "batch_size": int(batch_size),
                "seed": int(seed), "epochs": int(epochs), "sampling": sampling}
    fingerprint = _fingerprint(records, settings)

    torch.manual_seed(int(seed))
    cfg = peft.LoraConfig(r=int(lora_r), lora_alpha=alpha, lora_dropout=float(lora_dropout),
                          target_modules=targets, bias="none")
    try:
        model = peft.get_peft_model(backend.model, cfg)
    except ValueError as exc:
        raise ModelLoadError(
            f"cannot put LoRA on {str(base_path)!r} with target_modules={targets!r}: {exc}"
        ) from exc
    backend.model = model
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=float(lr))

    out_dir = Path(out)
    ckpt = out_dir / "checkpoint"
    state_file = ckpt / "state.json"
    config = {**settings, "data": _fingerprint(records, {})}  # what a resumed run must share with the checkpoint
    losses: list[float] = []
    loop_state: dict[str, Any] | None = None
    if resume and state_file.is_file():
        loop_state, losses = _restore(ckpt, config, fingerprint, model, opt, per_epoch=per_epoch,
                                      device=backend.device)
    resumed_from = None if loop_state is None else int(loop_state["step"])

    encoder = _Encoder(backend, records, max_length)
    dev, dtype = backend.device, backend.model.dtype

    def probe_loss() -> float | None:
        if not probe:
            return None
        model.eval()
        vals = []
        with torch.no_grad():
            for s in first[: int(probe)]:
                vals.append(float(model(**_to(encoder.collate([encoder(s)]), dev, dtype)).loss))
        return round(float(np.mean(vals)), 6)

    def batches(epoch: int, start: int) -> Any:
        samples = first if epoch == 1 else epoch_samples(epoch - 1)
        model.train()
        for b in range(start * int(batch_size), len(samples), int(batch_size)):
            yield _to(encoder.collate([encoder(s) for s in samples[b : b + int(batch_size)]]), dev, dtype)

    def step(batch: dict[str, Any], st: dict[str, Any]) -> dict[str, float]:
        losses.append(optimizer_step(model(**batch).loss, opt, trainable, step=st["step"], lr=lr))
        return {"loss": losses[-1]}

    def save_checkpoint(st: dict[str, Any]) -> None:
        ckpt.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(ckpt))
        torch.save(opt.state_dict(), str(ckpt / "optimizer.pt"))
        write_json_atomic(state_file, {"step": st["step"], "losses": losses, "fingerprint": fingerprint,
                                       "config": config, "loop": st}, default=str)
        model.train()

    loss_before = probe_loss()
    t0 = time.perf_counter()
    with make_progress(progress) as bars:
        loop_state, _ = fit(step, batches, epochs=int(epochs), steps_per_epoch=per_epoch, state=loop_state,
                            save=save_checkpoint, save_every=int(save_every),
                            total_steps=None if max_steps is None else int(max_steps),
                            progress=bars, name="train-moderator",
                            describe=lambda sums, s: f"loss {losses[-1]:.4f}" if losses else "")
    step_count = int(loop_state["step"])
    model.eval()
    loss_after = probe_loss()

    adapter_dir = out_dir / "adapter"
    model.save_pretrained(str(adapter_dir))
    summary = _summary(records, first)
    training = {**summary, "data": data_name, "steps": step_count, "epochs": int(epochs), "lr": float(lr),
                "lora_r": int(lora_r), "lora_alpha": alpha, "seed": int(seed),
                "negative_rate": float(negative_rate), "balance": bool(balance),
                "final_loss": losses[-1] if losses else None, "loss_before": loss_before,
                "loss_after": loss_after}
    card_path = out_dir / "moderator.json"
    write_card(card_path, {
        "type": "vlm-lora",
        "name": out_dir.resolve().name,
        "base_model": str(base_path),
        "adapter": "adapter",
        "family": backend.family,
        "mode": "perspective",
        "categories": defs,
        "threshold": 0.5,
        "max_new_tokens": 24,
    }, training=training, started=t_start, validate=check_vlm_card_type)
    report = {
        "steps": step_count,
        "losses": losses,
        "loss_before": loss_before,
        "loss_after": loss_after,
        "resumed_from": resumed_from,
        "trainable_parameters": int(sum(p.numel() for p in trainable)),
        "seconds": round(time.perf_counter() - t0, 3),
        "card": str(card_path),
        "adapter": str(adapter_dir),
        "data": summary,
        "settings": settings,
        "fingerprint": fingerprint,
    }
    write_json_atomic(out_dir / "train_moderator.json", report, default=str)
    return report
