"""Tests of veil.rationale; ``make_result`` builds planted pipeline results by hand."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from veil.classify.base import Detection
from veil.types import ModelOutput, Region, Result


def model_output(
    name: str,
    proba: dict[str, float],
    unsafe_labels: Sequence[str],
    *,
    threshold: float = 0.5,
    detections: Sequence[Detection] = (),
) -> ModelOutput:
    """A ModelOutput whose unsafe score is the summed probability of ``unsafe_labels``."""
    score = float(min(1.0, sum(proba[lbl] for lbl in unsafe_labels)))
    return ModelOutput(
        name, dict(proba), score, score >= threshold, threshold, tuple(unsafe_labels),
        list(detections),
    )


def region(rid: int, rank: int, bbox: tuple[int, int, int, int], shape: tuple[int, int]) -> Region:
    """A Region whose centroid and area follow from ``bbox`` in an image of ``shape`` (H, W)."""
    x, y, w, h = bbox
    H, W = shape
    return Region(rid, rank, 0.5, (w * h) / (H * W), bbox, ((x + w / 2) / W, (y + h / 2) / H))


def make_result(
    models: Sequence[ModelOutput],
    *,
    shape: tuple[int, int] = (60, 90),
    regions: Sequence[Region] = (),
    masked: Sequence[Region] | None = None,
    fail_closed: bool = False,
) -> Result:
    """A Result: unsafe if any model is; ``masked`` regions (default: all) are set in the mask."""
    H, W = shape
    unsafe = any(m.unsafe for m in models)
    mask = np.zeros((H, W), bool)
    for reg in regions if masked is None else masked:
        x, y, w, h = reg.bbox
        mask[y : y + h, x : x + w] = True
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return Result(
        unsafe=unsafe,
        scores={m.name: m.unsafe_score for m in models},
        models=list(models),
        counterfactual_found=bool(regions) and unsafe,
        depth=len(regions) if regions else None,
        obfuscated_fraction=float(mask.mean()),
        scores_after={},
        models_after=[],
        fail_closed=fail_closed,
        error=None,
        image=image,
        mask=mask,
        regions=list(regions),
    )


# -- tiny vision-language models (transformers imported lazily) ------------------------------
TOKENIZER_CORPUS = (
    "Safety classifiers report: the image contains sexually explicit content. "
    "Question: What are the people doing? Answer: a person stands in a room"
)
LLAVA_TEMPLATE = (
    "{% for m in messages %}USER: {% for c in m['content'] %}{% if c['type'] == 'image' %}"
    "<image>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %} ASSISTANT:{% endfor %}"
)


def tiny_tokenizer(extra: Sequence[str] = ()):
    """A byte-level BPE tokenizer (exact round trip for any text) trained on one sentence."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([TOKENIZER_CORPUS] * 4, trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    if extra:
        fast.add_tokens(list(extra), special_tokens=True)
    return fast


def build_tiny_instructblip(directory, *, seed: int = 0, init_std: float = 0.02):
    """Save a randomly initialized 1-layer InstructBLIP (OPT LM, 4 query tokens) with its processor.

    A larger ``init_std`` makes the random language model react to its image tokens,
    so a few Q-Former steps visibly lower the loss.
    """
    import torch
    import transformers

    lm_tok, qf_tok = tiny_tokenizer(), tiny_tokenizer()
    proc = transformers.InstructBlipProcessor(
        image_processor=transformers.BlipImageProcessor(size={"height": 32, "width": 32}),
        tokenizer=lm_tok, qformer_tokenizer=qf_tok, num_query_tokens=4,
    )
    cfg = transformers.InstructBlipConfig(
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                           num_attention_heads=2, image_size=32, patch_size=8),
        qformer_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                            num_attention_heads=2, vocab_size=len(qf_tok),
                            max_position_embeddings=512, pad_token_id=qf_tok.pad_token_id),
        text_config=transformers.OPTConfig(
            hidden_size=32, ffn_dim=37, num_hidden_layers=1, num_attention_heads=2,
            vocab_size=len(lm_tok), max_position_embeddings=1024, word_embed_proj_dim=32,
            bos_token_id=lm_tok.bos_token_id, eos_token_id=lm_tok.eos_token_id,
            pad_token_id=lm_tok.pad_token_id, init_std=init_std,
        ).to_dict(),
        num_query_tokens=4, image_token_index=lm_tok.convert_tokens_to_ids("<image>"),
        initializer_range=init_std,
    )
    torch.manual_seed(seed)
    model = transformers.InstructBlipForConditionalGeneration(cfg)
    model.save_pretrained(directory)
    proc.save_pretrained(directory)
    return directory


def build_tiny_llava(directory, *, seed: int = 0):
    """Save a randomly initialized tiny LLaVA (CLIP vision, Llama LM, 16 image tokens) with its processor."""
    import torch
    import transformers

    tok = tiny_tokenizer(["<image>"])
    proc = transformers.LlavaProcessor(
        image_processor=transformers.CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, image_token="<image>", chat_template=LLAVA_TEMPLATE,
    )
    cfg = transformers.LlavaConfig(
        vision_config=transformers.CLIPVisionConfig(
            hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
            image_size=32, patch_size=8, projection_dim=32,
        ).to_dict(),
        text_config=transformers.LlamaConfig(
            hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=2, vocab_size=len(tok), max_position_embeddings=1024,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        ).to_dict(),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1, vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    model = transformers.LlavaForConditionalGeneration(cfg)
    model.save_pretrained(directory)
    proc.save_pretrained(directory)
    return directory


QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_qwen2_vl(directory, *, seed: int = 0):
    """Save a randomly initialized 1-layer Qwen2-VL (56×56 images → 4 image tokens) with its processor."""
    import torch
    import transformers

    specials = ["<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>",
                "<|im_start|>", "<|im_end|>"]
    tok = tiny_tokenizer(specials)
    sizes = dict(min_pixels=56 * 56, max_pixels=56 * 56, patch_size=14, merge_size=2,
                 temporal_patch_size=2)
    proc = transformers.Qwen2VLProcessor(
        image_processor=transformers.Qwen2VLImageProcessor(**sizes),
        tokenizer=tok, video_processor=transformers.Qwen2VLVideoProcessor(**sizes),
        chat_template=QWEN_TEMPLATE,
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    cfg = transformers.Qwen2VLConfig(
        vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2),
        text_config=dict(
            hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=2, vocab_size=len(tok), max_position_embeddings=1024,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            rope_parameters={"rope_type": "default", "mrope_section": [4, 2, 2],
                             "rope_theta": 10000.0},
        ),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = transformers.Qwen2VLForConditionalGeneration(cfg)
    model.save_pretrained(directory)
    proc.save_pretrained(directory)
    return directory
