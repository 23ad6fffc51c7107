"""A tiny trained causal LM with its own tokenizer, built offline for the demo, tests and benchmarks.

A random model with tied embeddings repeats its last token whatever the noise; this one has untied
embeddings and a few hundred training steps on an embedded corpus, so its greedy output is text-like
and responds to noise.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
from importlib.metadata import version
from pathlib import Path

from lm_eval_noise.cache import build_once, cache_root

ARCHS = ("llama", "qwen2")
_RECIPE_VERSION = 5  # 5: the done.json marker lists file sizes (lm_eval_noise.cache)
_SUBJECTS = ["the cat", "a robot", "the old sailor", "my sister", "the wizard", "a small dog",
             "the teacher", "a young girl", "the king", "our neighbour", "the detective", "a farmer"]
_VERBS = ["found", "lost", "built", "painted", "opened", "carried", "watched", "followed",
          "repaired", "sold", "hid", "wrote"]
_OBJECTS = ["a red box", "the map", "a strange letter", "the golden key", "a tiny boat",
            "the last apple", "an old clock", "the secret door", "a blue lamp", "the broken bell"]
_PLACES = ["in the forest", "by the river", "at the market", "under the bridge", "on the hill",
           "in the castle", "near the station", "at midnight", "in the rain", "after school"]
_FUNCS = [
    ("add", "a, b", "Return the sum of a and b.", "return a + b"),
    ("is_even", "n", "Return True if n is even.", "return n % 2 == 0"),
    ("reverse", "s", "Return the string s reversed.", "return s[::-1]"),
    ("maximum", "xs", "Return the largest element of xs.", "return max(xs)"),
    ("count_vowels", "s", "Count the vowels in s.", "return sum(c in 'aeiou' for c in s)"),
    ("square", "x", "Return x squared.", "return x * x"),
    ("first", "xs", "Return the first element of xs.", "return xs[0]"),
    ("total", "xs", "Return the sum of the list xs.", "return sum(xs)"),
]


def corpus(n_lines: int = 1500, seed: int = 0) -> list[str]:
    """Deterministic training text: short stories, arithmetic and small Python functions."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        kind = rng.random()
        if kind < 0.5:
            s, v, o, p = (rng.choice(x) for x in (_SUBJECTS, _VERBS, _OBJECTS, _PLACES))
            s2, v2, o2 = (rng.choice(x) for x in (_SUBJECTS, _VERBS, _OBJECTS))
            lines.append(f"Once upon a time {s} {v} {o} {p}. Then {s2} {v2} {o2}.")
        elif kind < 0.75:
            a, b = rng.randint(1, 9), rng.randint(1, 9)  # small enough to be learnt in a few hundred steps
            lines.append(f"Question: What is {a} plus {b}? Answer: {a} + {b} = {a + b}. #### {a + b}")
        else:
            name, args, doc, body = rng.choice(_FUNCS)
            lines.append(f'def {name}({args}):\n    """{doc}"""\n    {body}\n')
    return lines


def _spec(arch: str, hidden: int, layers: int, steps: int) -> dict:
    # The trained weights depend on torch (initialisation, kernels) and transformers (model code): a
    # cached model built under other versions is a different model.
    return {"arch": arch, "hidden": hidden, "layers": layers, "steps": steps, "recipe": _RECIPE_VERSION,
            "torch": version("torch"), "transformers": version("transformers")}


def ensure_tiny_model(
    arch: str = "llama",
    cache_dir: str | os.PathLike | None = None,
    hidden: int = 64,
    layers: int = 2,
    steps: int = 300,
) -> str:
    """Build (once) and return the path of a tiny trained model with tokenizer; reused from the cache."""
    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r} is not supported; valid values: {', '.join(ARCHS)}")
    spec = _spec(arch, hidden, layers, steps)
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    path = Path(cache_dir or cache_root()) / f"tiny-{arch}-{digest}"
    return str(build_once(path, spec, lambda tmp: _build(tmp, spec), what=f"tiny {arch} model"))


def _train_tokenizer(lines: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(lines, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def _config(spec: dict, tokenizer=None, vocab_size: int = 512):
    from transformers import LlamaConfig, Qwen2Config

    cls = {"llama": LlamaConfig, "qwen2": Qwen2Config}[spec["arch"]]
    special = {} if tokenizer is None else {
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    return cls(
        vocab_size=vocab_size if tokenizer is None else len(tokenizer),
        hidden_size=spec["hidden"],
        intermediate_size=spec["hidden"] * 2,
        num_hidden_layers=spec["layers"],
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        **special,
    )


def untrained_model(arch: str = "llama", hidden: int = 64, layers: int = 2, seed: int = 0):
    """The tiny architecture with random weights and no tokenizer, for tests of where and how much noise
    lands, which need shapes and modules, not a trained model (nothing cached, nothing trained)."""
    import torch
    from transformers import AutoModelForCausalLM

    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r} is not supported; valid values: {', '.join(ARCHS)}")
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(_config(_spec(arch, hidden, layers, 0)), dtype=torch.float32).eval()


def _build(path: Path, spec: dict) -> None:
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM

    lines = corpus()
    tokenizer = _train_tokenizer(lines)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_config(spec, tokenizer), dtype=torch.float32)
    ids = [tokenizer.encode(line) + [tokenizer.eos_token_id] for line in lines]
    stream = torch.tensor([t for seq in ids for t in seq])
    seq_len, batch = 64, 16
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    # Progress on stderr: the first build takes a minute or more on a small CPU.
    steps = tqdm(range(spec["steps"]), desc=f"training the tiny {spec['arch']} model (once, cached)",
                 unit="step", file=sys.stderr, mininterval=1.0)
    for _ in steps:
        starts = torch.randint(0, len(stream) - seq_len - 1, (batch,), generator=gen)
        x = torch.stack([stream[s : s + seq_len] for s in starts.tolist()])
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        steps.set_postfix(loss=f"{loss.item():.2f}", refresh=False)
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
