"""Self-BLEU (Zhu et al., 2018): how much the K samples for one prompt repeat each other.

Two definitions are in use, and they give different numbers:

* ``method="max"`` (this project's seed notes): mean over i of max over j != i of
  BLEU(hypothesis s_i; single reference s_j).
* ``method="multi_ref"`` (Texygen, fast-bleu): mean over i of BLEU(hypothesis s_i;
  references = all other samples).

Both use nltk's ``SmoothingFunction().method1`` (a zero match count becomes 0.1 /
number of hypothesis n-grams), nltk's brevity penalty (the reference length closest
to the hypothesis length, the shorter on a tie) and uniform weights over the orders
1..min(max_n, hypothesis length): the "effective order" of Chen & Cherry (2014), nltk's
``auto_reweigh``. Without it an order the hypothesis is too short for would count as
precision 0.1, so ten copies of "The end." scored 0.1**0.5 = 0.32 and looked more
diverse than ten different stories. Each value equals
``nltk.translate.bleu_score.sentence_bleu(..., auto_reweigh=True)`` for max_n = 4
(and the same rule with weights (1/e,)*e for other max_n) computed pair by pair, to
~1e-15; a hypothesis with no unigram match scores 0.

Empty samples (nothing but whitespace) are left out: they carry no text to compare.
With fewer than two non-empty samples Self-BLEU is not measurable and is NaN.

Speed: each sample's n-grams are counted once (integer ids, numpy). For
``multi_ref`` the clipped count of an n-gram against "all other samples" is its
largest count among the others: the second largest overall when sample i holds the
largest, else the largest. For ``max`` the K x K clipped match counts
sum_u min(c_iu, c_ju) come from products of 0/1 matrices, one per count level t
(min(a, b) = sum_t [a >= t][b >= t]): dense BLAS for n-grams shared by many
samples, sparse products for the rest.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from lm_eval_noise.metrics._common import (
    Tokenizer,
    check_choice,
    check_positive_int,
    check_texts,
    check_tokenizer,
    non_empty,
    tokenize_all,
)

METHODS = ("max", "multi_ref")
EPSILON = 0.1  # nltk SmoothingFunction().method1 default
# Columns (n-grams) held by at least this share of samples go to dense BLAS, the rest to sparse products.
_DENSE_SHARE = 0.05


def self_bleu(
    texts: list[str],
    max_n: int = 4,
    method: str = "max",
    tokenizer: Tokenizer | None = None,
) -> float:
    """Self-BLEU of the non-empty samples; range [0, 1], higher is LESS diverse.

    `method` is "max" or "multi_ref" (see the module docstring). Tokens are
    `str.split()` words unless `tokenizer` (callable str -> list[str]) is given.
    Fewer than two non-empty samples: NaN (no pair to compare; not measurable).
    """
    scores = self_bleu_per_sample(texts, max_n=max_n, method=method, tokenizer=tokenizer)
    measured = scores[~np.isnan(scores)]
    return float(measured.mean()) if len(measured) >= 2 else math.nan


def self_bleu_per_sample(
    texts: list[str],
    max_n: int = 4,
    method: str = "max",
    tokenizer: Tokenizer | None = None,
) -> np.ndarray:
    """The K per-hypothesis scores that `self_bleu` averages: NaN for an empty sample, and
    all NaN when fewer than two samples are non-empty."""
    texts = check_texts(texts)
    max_n = check_positive_int(max_n, "max_n")
    method = check_choice(method, "method", METHODS)
    check_tokenizer(tokenizer)
    keep = non_empty(texts)
    out = np.full(len(texts), math.nan)
    if len(keep) < 2:
        return out
    token_lists = tokenize_all([texts[i] for i in keep], tokenizer)
    lengths, tables = _count_ngrams(token_lists, max_n)
    score = _max_pairwise if method == "max" else _multi_ref
    out[keep] = score(lengths, tables, max_n)
    return out


def _count_ngrams(token_lists: list[list], max_n: int) -> tuple[np.ndarray, list[tuple[np.ndarray, ...]]]:
    """Per order n: (sample, ngram_id, count) for every n-gram present, as numpy arrays."""
    k = len(token_lists)
    all_tokens = list(itertools.chain.from_iterable(token_lists))
    vocab = dict(zip(dict.fromkeys(all_tokens), itertools.count()))
    flat = np.fromiter(map(vocab.__getitem__, all_tokens), dtype=np.int64, count=len(all_tokens))
    lengths = np.array([len(t) for t in token_lists], dtype=np.int64)
    sample_of = np.repeat(np.arange(k, dtype=np.int64), lengths)
    n_vocab = max(len(vocab), 1)
    gram = flat  # gram[p]: id of the n-gram starting at position p (crossing samples allowed; masked below)
    tables = []
    for n in range(1, max_n + 1):
        m = max(len(flat) - n + 1, 0)
        if n > 1 and m > 0:
            keys = gram[:m] * n_vocab + flat[n - 1 : n - 1 + m]
            _, gram = np.unique(keys, return_inverse=True)
            gram = gram.reshape(-1).astype(np.int64)
        elif n > 1:
            gram = np.zeros(0, dtype=np.int64)
        valid = sample_of[:m] == sample_of[n - 1 : n - 1 + m]
        samples, grams = sample_of[:m][valid], gram[:m][valid]
        n_grams = int(gram.max()) + 1 if len(gram) else 1
        pair_keys, counts = np.unique(samples * n_grams + grams, return_counts=True)
        tables.append((pair_keys // n_grams, pair_keys % n_grams, counts.astype(np.int64)))
    return lengths, tables


def _denominators(lengths: np.ndarray, max_n: int) -> np.ndarray:
    """nltk's modified-precision denominator: max(1, number of hypothesis n-grams); shape (max_n, K)."""
    n = np.arange(1, max_n + 1)[:, None]
    return np.maximum(1, lengths[None, :] - n + 1)


def _log_precisions(numerators: np.ndarray, denominators: np.ndarray) -> np.ndarray:
    """log p_n with method1 smoothing: num/den, or 0.1/den when num == 0 (float division as nltk does it)."""
    p = np.where(numerators > 0, numerators / denominators, EPSILON / denominators)
    return np.log(p)


def _brevity_penalty(ref_len: np.ndarray, hyp_len: np.ndarray) -> np.ndarray:
    """nltk: 1 if hyp > ref; 0 if hyp == 0; else exp(1 - ref/hyp)."""
    ref_len, hyp_len = np.broadcast_arrays(ref_len, hyp_len)
    ratio = np.divide(ref_len, hyp_len, out=np.ones(hyp_len.shape), where=hyp_len > 0)
    bp = np.exp(1.0 - ratio)
    bp = np.where(hyp_len > ref_len, 1.0, bp)
    return np.where(hyp_len == 0, 0.0, bp)


def _combine(log_p: np.ndarray, bp: np.ndarray, unigram_matches: np.ndarray, hyp_len: np.ndarray, max_n: int) -> np.ndarray:
    """bp * exp(mean of log p_n over n = 1..e), e = min(max_n, hypothesis length) (the effective
    order); 0 where there is no unigram match (nltk returns 0 there). `hyp_len` broadcasts
    against log_p[0]."""
    order = np.minimum(hyp_len, max_n)
    n = np.arange(1, max_n + 1).reshape((-1,) + (1,) * log_p[0].ndim)
    s = np.where(n <= order, log_p, 0.0).sum(axis=0) / np.maximum(order, 1)
    return np.where(unigram_matches > 0, bp * np.exp(s), 0.0)


def _multi_ref(lengths: np.ndarray, tables: list, max_n: int) -> np.ndarray:
    k = len(lengths)
    numerators = np.zeros((max_n, k), dtype=np.int64)
    for n_idx, (samples, grams, counts) in enumerate(tables):
        if not len(counts):
            continue
        n_grams = int(grams.max()) + 1
        top1 = np.zeros(n_grams, dtype=np.int64)
        np.maximum.at(top1, grams, counts)
        holds_top = counts == top1[grams]
        n_holders = np.bincount(grams[holds_top], minlength=n_grams)
        below_top = np.zeros(n_grams, dtype=np.int64)
        np.maximum.at(below_top, grams[~holds_top], counts[~holds_top])
        # Second largest count over all samples (equal to top1 when two samples share the top).
        top2 = np.where(n_holders >= 2, top1, below_top)
        # Largest count among the OTHER samples: top2 for a holder of top1, else top1.
        others_max = np.where(holds_top, top2[grams], top1[grams])
        clipped = np.minimum(counts, others_max)
        numerators[n_idx] = np.bincount(samples, weights=clipped, minlength=k).astype(np.int64)
    log_p = _log_precisions(numerators, _denominators(lengths, max_n))
    # Closest other length to each hypothesis length, the shorter on a tie (nltk's closest_ref_length).
    key = np.abs(lengths[None, :] - lengths[:, None]) * (2 * int(lengths.max()) + 2) + lengths[None, :]
    np.fill_diagonal(key, np.iinfo(np.int64).max)
    ref_len = lengths[np.argmin(key, axis=1)]
    bp = _brevity_penalty(ref_len, lengths)
    return _combine(log_p, bp, numerators[0], lengths, max_n)


def _max_pairwise(lengths: np.ndarray, tables: list, max_n: int) -> np.ndarray:
    k = len(lengths)
    matches = np.stack([_pairwise_matches(k, *table) for table in tables])  # (max_n, K hyp, K ref)
    den = _denominators(lengths, max_n)[:, :, None]
    log_p = _log_precisions(matches, den)
    bp = _brevity_penalty(lengths[None, :], lengths[:, None])
    bleu = _combine(log_p, bp, matches[0], lengths[:, None], max_n)
    np.fill_diagonal(bleu, -np.inf)
    return bleu.max(axis=1)


def _pairwise_matches(k: int, samples: np.ndarray, grams: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """M[i, j] = sum over n-grams u of min(count_i(u), count_j(u)); the diagonal is not used.

    min(a, b) = sum_t [a >= t][b >= t], so with one 0/1 column per (n-gram, level t)
    M = B @ B.T. Only columns held by two or more samples can add off the diagonal.
    """
    matches = np.zeros((k, k), dtype=np.int64)
    if not len(counts):
        return matches
    # Expand each (sample, n-gram u, count c) into c entries, at columns (u, level t) for t = 1..c.
    n_grams = int(grams.max()) + 1
    top = np.zeros(n_grams, dtype=np.int64)
    np.maximum.at(top, grams, counts)
    first_column = np.cumsum(top) - top  # column of (u, 1); (u, t) is first_column[u] + t - 1
    if int(counts.max()) > 1:
        reps = np.repeat(np.arange(len(counts)), counts)
        level0 = np.arange(len(reps)) - np.repeat(np.cumsum(counts) - counts, counts)
        samples, columns = samples[reps], first_column[grams[reps]] + level0
    else:
        columns = first_column[grams]
    doc_freq = np.bincount(columns)
    keep = doc_freq[columns] >= 2
    if not keep.any():
        return matches
    shared = doc_freq >= 2
    remap = np.cumsum(shared) - 1
    samples, columns = samples[keep], remap[columns[keep]]
    doc_freq = doc_freq[shared]
    dense_cols = doc_freq >= max(2, math.ceil(_DENSE_SHARE * k))
    is_dense = dense_cols[columns]
    if is_dense.any():
        col = np.cumsum(dense_cols) - 1
        block = np.zeros((k, int(dense_cols.sum())), dtype=np.float64)
        block[samples[is_dense], col[columns[is_dense]]] = 1.0
        # 0/1 products summed in float64 are exact integers (each sum is below 2**53).
        matches += np.rint(block @ block.T).astype(np.int64)
    if not is_dense.all():
        from scipy import sparse

        s, c = samples[~is_dense], columns[~is_dense]
        mat = sparse.csr_matrix((np.ones(len(s), dtype=np.int64), (s, c)), shape=(k, len(doc_freq)))
        matches += (mat @ mat.T).toarray()
    return matches
