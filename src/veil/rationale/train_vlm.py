"""Fine-tune the Q-Former of an InstructBLIP-style model on conditioned instructions.

The paper trains its Conditional VLM by updating only the Q-Former (and its
learned query tokens): the vision encoder and the language model stay
frozen, so the classifiers' control code — which reaches the Q-Former as its
instruction — learns to steer which visual features the language model sees.

Data is a JSONL file, one example per line::

    {"image": "imgs/1.jpg", "instruction": "Safety classifiers report: …\\nQuestion: …\\nAnswer:",
     "answer": "A person is …"}

``image`` is relative to the JSONL file. Instead of ``instruction`` a line may
give ``question`` and optionally ``control`` (a control code from
:func:`veil.rationale.build_control`, e.g. copied from ``results.jsonl``); the
conditioned instruction is then built with :mod:`veil.rationale.prompt`. An
optional ``qformer_instruction`` overrides the Q-Former's text.

The loss is computed on the answer tokens only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from veil.errors import CapabilityError, InvalidParameterError, ModelLoadError, require
from veil.rationale.prompt import build_instruction, build_qformer_instruction
from veil.training.cards import write_card
from veil.training.data import read_jsonl
from veil.training.loop import check_checkpoint, fit, optimizer_step
from veil.training.progress import make_progress

__all__ = ["encode_example", "load_examples", "train_vlm"]


def load_examples(path: str | Path) -> list[dict[str, Any]]:
    """Read and validate a training JSONL; returns ``{image, prompt, qformer, answer}`` dicts.

    Raises
    ------
    InvalidParameterError
        Naming the line and key of a malformed example.
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidParameterError(f"training data {str(path)!r} does not exist")
    out: list[dict[str, Any]] = []
    for n, rec in read_jsonl(p):
        for key in ("image", "answer"):
            if not isinstance(rec.get(key), str) or not rec[key].strip():
                raise InvalidParameterError(f"{p}:{n}: key {key!r} must be a non-empty string")
        image = Path(rec["image"])
        image = image if image.is_absolute() else p.parent / image
        if not image.is_file():
            raise InvalidParameterError(f"{p}:{n}: image {str(image)!r} does not exist")
        if isinstance(rec.get("instruction"), str) and rec["instruction"].strip():
            prompt = rec["instruction"]
            qformer = rec.get("qformer_instruction") or prompt
        elif isinstance(rec.get("question"), str) and rec["question"].strip():
            control = rec.get("control") or {"strength": 0.0}
            if not isinstance(control, dict):
                raise InvalidParameterError(f"{p}:{n}: key 'control' must be a control-code object")
            prompt = build_instruction(rec["question"], control)
            qformer = rec.get("qformer_instruction") or build_qformer_instruction(rec["question"], control)
        else:
            raise InvalidParameterError(
                f"{p}:{n}: give either 'instruction' or 'question' (with an optional 'control')"
            )
        out.append({"image": str(image), "prompt": prompt, "qformer": str(qformer), "answer": rec["answer"]})
    if not out:
        raise InvalidParameterError(f"training data {str(path)!r} holds no examples")
    return out


def encode_example(processor: Any, model_config: Any, prompt: str, answer: str, *, max_length: int = 512) -> dict[str, list[int]]:
    """Token ids and labels for one example; labels are ``-100`` everywhere but the answer.

    For a decoder-only language model the sequence is ``[image tokens] prompt answer </s>``
    and only ``answer </s>`` is labelled. For an encoder-decoder one the answer is the
    decoder's target.
    """
    tok = processor.tokenizer
    n_query = int(model_config.num_query_tokens)
    image_id = int(model_config.image_token_index)
    prompt_ids = tok(prompt, add_special_tokens=True)["input_ids"]
    answer_ids = tok(" " + answer.strip(), add_special_tokens=False)["input_ids"]
    if tok.eos_token_id is not None:
        answer_ids = answer_ids + [int(tok.eos_token_id)]
    if model_config.use_decoder_only_language_model:
        budget = max_length - n_query - len(answer_ids)
        if budget < 1:
            raise InvalidParameterError(
                f"answer of {len(answer_ids)} tokens does not fit max_length {max_length}"
            )
        prompt_ids = prompt_ids[-budget:]  # keep the question end of a long prompt
        ids = [image_id] * n_query + prompt_ids + answer_ids
        labels = [-100] * (n_query + len(prompt_ids)) + answer_ids
        return {"input_ids": ids, "labels": labels}
    ids = [image_id] * n_query + prompt_ids[: max_length - n_query]
    return {"input_ids": ids, "labels": answer_ids[:max_length]}


def _pad(rows: Sequence[Sequence[int]], value: int) -> tuple[Any, Any]:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


def _restore(ckpt: Path, config: dict[str, Any], trainable: list[Any], opt: Any) -> tuple[dict[str, Any], list[float]]:
    """Load ``OUT/checkpoint.pt`` into the Q-Former's parameters, the optimizer and torch's random state."""
    import torch

    try:
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types on a truncated file
        raise ModelLoadError(f"cannot read checkpoint {str(ckpt)!r} ({exc}); delete it or pass resume=False") from exc
    check_checkpoint(saved.get("config"), config, str(ckpt))
    with torch.no_grad():
        for p, value in zip(trainable, saved["trainable"], strict=True):
            p.copy_(value.to(p.device, p.dtype))
    opt.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["torch_rng"])
    return saved["state"], list(saved["losses"])


def train_vlm(
    data: str | Path,
    *,
    model_dir: str | Path,
    out: str | Path,
    epochs: int = 1,
    lr: float = 1e-5,
    max_steps: int | None = None,
    batch_size: int = 4,
    seed: int = 0,
    device: str | None = None,
    max_length: int = 512,
    weight_decay: float = 0.05,
    progress: bool = True,
    save_every: int | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Fine-tune only the Q-Former (and its query tokens) of a local InstructBLIP model.

    Parameters
    ----------
    data : path
        Training JSONL (see the module docstring).
    model_dir : path
        Local model folder (config, weights, processor); nothing is downloaded.
    out : path
        Folder the fine-tuned model, its processor and ``train_vlm.json`` are saved to.
    epochs, lr, max_steps, batch_size : int, float, int or None, int
        Passes over the data, AdamW learning rate, an optional step cap, examples per step.
    seed : int
        Seeds torch and the shuffling; training is reproducible on one device.
    progress : bool
        Show a progress bar (steps and the running loss) on stderr.
    save_every : int, optional
        Write ``OUT/checkpoint.pt`` (the Q-Former's weights, the optimizer, the random state
        and the loop state) every this many steps, at each epoch's end and when training stops.
        Off by default: it holds the Q-Former and its optimizer state.
    resume : bool
        Continue from ``OUT/checkpoint.pt`` when it exists and was made with the same data and
        settings (the resume rule of :mod:`veil.training.loop`); the resumed run takes the same
        steps as an uninterrupted one.

    Returns
    -------
    dict
        ``steps``, ``losses`` (per step), ``trainable_parameters``, ``frozen_parameters``,
        ``seconds``, ``resumed_from`` (the step, or None) and ``out``.
    """
    transformers: Any = require("transformers", "vlm")
    torch: Any = require("torch", "vlm")
    if int(epochs) < 1:
        raise InvalidParameterError(f"epochs must be >= 1, got {epochs}")
    if not lr > 0:
        raise InvalidParameterError(f"lr must be > 0, got {lr}")
    if max_steps is not None and int(max_steps) < 1:
        raise InvalidParameterError(f"max_steps must be >= 1, got {max_steps}")
    if int(batch_size) < 1:
        raise InvalidParameterError(f"batch_size must be >= 1, got {batch_size}")
    if save_every is not None and (isinstance(save_every, bool) or int(save_every) < 1):
        raise InvalidParameterError(f"save_every must be an integer >= 1 (or None), got {save_every!r}")
    mdir = Path(model_dir)
    if not (mdir / "config.json").is_file():
        raise ModelLoadError(f"model_dir {str(model_dir)!r} is not a local model folder (no config.json)")
    examples = load_examples(data)

    try:
        config = transformers.AutoConfig.from_pretrained(str(mdir), local_files_only=True)  # type: ignore[attr-defined]
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read config in {str(mdir)!r}: {exc}") from exc
    if getattr(config, "model_type", None) != "instructblip":
        raise CapabilityError(
            f"train-vlm fine-tunes the Q-Former of InstructBLIP-style models; {str(mdir)!r} "
            f"holds model_type {getattr(config, 'model_type', None)!r}"
        )
    torch.manual_seed(int(seed))  # type: ignore[attr-defined]
    try:
        model = transformers.InstructBlipForConditionalGeneration.from_pretrained(  # type: ignore[attr-defined]
            str(mdir), local_files_only=True
        )
        processor = transformers.AutoProcessor.from_pretrained(str(mdir), local_files_only=True)  # type: ignore[attr-defined]
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the model in {str(mdir)!r}: {exc}") from exc
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")  # type: ignore[attr-defined]
    model.to(dev)

    for p in model.parameters():
        p.requires_grad_(False)
    trainable = list(model.qformer.parameters()) + [model.query_tokens]
    for p in trainable:
        p.requires_grad_(True)
    n_train = sum(p.numel() for p in trainable)
    n_frozen = sum(p.numel() for p in model.parameters()) - n_train

    from PIL import Image

    from veil.image import load_image

    encoded = []
    for ex in examples:
        enc = encode_example(processor, model.config, ex["prompt"], ex["answer"], max_length=max_length)
        q = processor.qformer_tokenizer(ex["qformer"], truncation=True, max_length=512)["input_ids"]
        pix = processor.image_processor(Image.fromarray(load_image(ex["image"])), return_tensors="pt")
        encoded.append({**enc, "qformer_input_ids": q, "pixel_values": pix["pixel_values"][0]})

    pad_id = processor.tokenizer.pad_token_id
    pad_id = int(pad_id if pad_id is not None else 0)
    qpad = processor.qformer_tokenizer.pad_token_id
    qpad = int(qpad if qpad is not None else 0)
    opt = torch.optim.AdamW(trainable, lr=float(lr), weight_decay=float(weight_decay))  # type: ignore[attr-defined]
    rng = np.random.default_rng(int(seed))
    orders: list[Any] = []  # one permutation per epoch, drawn in order: the run is seeded
    losses: list[float] = []
    ckpt = Path(out) / "checkpoint.pt"
    config = {"model_dir": str(mdir.resolve()), "data": [[e["image"], e["prompt"], e["qformer"], e["answer"]]
                                                         for e in examples],
              "lr": float(lr), "batch_size": int(batch_size), "seed": int(seed), "max_length": int(max_length),
              "weight_decay": float(weight_decay)}
    state: dict[str, Any] | None = None
    if resume and ckpt.is_file():
        state, losses = _restore(ckpt, config, trainable, opt)
    resumed_from = None if state is None else int(state["step"])
    t0 = time.perf_counter()
    model.train()
    bs = int(batch_size)

    def batches(epoch: int, start: int) -> Any:
        while len(orders) < epoch:
            orders.append(rng.permutation(len(encoded)))
        order = orders[epoch - 1]
        for b in range(start * bs, len(order), bs):
            yield [encoded[i] for i in order[b : b + bs]]

    def step(batch: list[dict[str, Any]], st: dict[str, Any]) -> dict[str, float]:
        ids, mask = _pad([b["input_ids"] for b in batch], pad_id)
        labels, _ = _pad([b["labels"] for b in batch], -100)
        qids, qmask = _pad([b["qformer_input_ids"] for b in batch], qpad)
        pixels = torch.stack([b["pixel_values"] for b in batch]).to(dev, model.dtype)  # type: ignore[attr-defined]
        outputs = model(
            pixel_values=pixels, input_ids=ids.to(dev), attention_mask=mask.to(dev),
            qformer_input_ids=qids.to(dev), qformer_attention_mask=qmask.to(dev),
            labels=labels.to(dev),
        )
        losses.append(optimizer_step(outputs.loss, opt, trainable, step=st["step"], lr=lr))
        return {"loss": losses[-1]}

    def save(st: dict[str, Any]) -> None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = ckpt.with_name(ckpt.name + ".tmp")
        torch.save({"trainable": [p.detach().cpu() for p in trainable], "optimizer": opt.state_dict(),  # type: ignore[attr-defined]
                    "torch_rng": torch.get_rng_state(), "state": st, "losses": losses, "config": config}, tmp)  # type: ignore[attr-defined]
        tmp.replace(ckpt)

    with make_progress(progress) as bars:
        state, _ = fit(step, batches, epochs=int(epochs), steps_per_epoch=-(-len(encoded) // bs), state=state,
                       save=save if save_every is not None else None,
                       save_every=None if save_every is None else int(save_every),
                       total_steps=None if max_steps is None else int(max_steps), progress=bars, name="train-vlm",
                       describe=lambda sums, s: f"loss {losses[-1]:.4f}" if losses else "")
    step_count = int(state["step"])
    model.eval()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    processor.save_pretrained(str(out_dir))
    report = {
        "steps": step_count,
        "losses": losses,
        "trainable_parameters": int(n_train),
        "frozen_parameters": int(n_frozen),
        "seconds": round(time.perf_counter() - t0, 3),
        "resumed_from": resumed_from,
        "seed": int(seed),
        "lr": float(lr),
        "examples": len(encoded),
        "out": str(out_dir),
    }
    write_card(out_dir / "train_vlm.json", report)  # the record of this run (the model folder has no card)
    return report
