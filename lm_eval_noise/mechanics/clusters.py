"""Whether perturbed embeddings cluster by what they lead to: k-means on the principal components of the
N perturbed embeddings of one prompt position, k chosen by the silhouette (Rousseeuw 1987), and the
adjusted mutual information (Vinh, Epps & Bailey 2010) between cluster membership and each generation's
outcome class (its behaviour signature for code prompts with tests, else its exact text)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_mutual_info_score, silhouette_score

MAX_K = 8
MAX_COMPONENTS = 10


@dataclasses.dataclass
class Clustering:
    """k-means labels of N points, the chosen k and its silhouette, and the PCA components used."""

    labels: np.ndarray
    k: int
    silhouette: float
    components: int
    explained_variance: float


def cluster_points(points: np.ndarray, seed: int, max_k: int = MAX_K) -> Clustering:
    """k-means (k = 2..min(max_k, N−1), the best silhouette) on the first principal components of points
    [N, d]; N >= 3 (a silhouette needs 2 <= k <= N − 1)."""
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if n < 3:
        raise ValueError(f"clustering needs at least 3 samples (--samples >= 3); got {n}")
    components = max(1, min(MAX_COMPONENTS, n - 1, points.shape[1]))
    pca = PCA(n_components=components, svd_solver="full").fit(points)
    reduced = pca.transform(points)
    best: Clustering | None = None
    for k in range(2, min(max_k, n - 1) + 1):
        labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(reduced)
        if len(set(labels.tolist())) < 2:  # all points identical: no partition to score
            continue
        score = float(silhouette_score(reduced, labels))
        if best is None or score > best.silhouette:
            best = Clustering(labels, k, score, components, float(pca.explained_variance_ratio_.sum()))
    if best is None:
        return Clustering(np.zeros(n, dtype=int), 1, math.nan, components, float(pca.explained_variance_ratio_.sum()))
    return best


def outcome_ami(labels: np.ndarray, outcomes: list) -> float:
    """Adjusted mutual information between cluster labels and outcome classes; NaN where it says nothing:
    a single cluster or a single outcome class (AMI is then 0 or 1 by convention, not by evidence)."""
    classes = {repr(o) for o in outcomes}
    if len(set(np.asarray(labels).tolist())) < 2 or len(classes) < 2:
        return math.nan
    return float(adjusted_mutual_info_score([repr(o) for o in outcomes], labels))


# HumanEval's stop sequences (tasks/humaneval_pass_at_k/humaneval_pass_at_k.yaml `until`).
HUMANEVAL_STOPS = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


def is_code_prompt(record: dict) -> bool:
    """A HumanEval-style record: a prompt with `test` code and an `entry_point` function name."""
    return isinstance(record.get("test"), str) and isinstance(record.get("entry_point"), str)


def truncate_completion(text: str) -> str:
    """The completion up to the first HumanEval stop sequence, as the task's `until` cuts it."""
    cut = min((i for i in (text.find(s) for s in HUMANEVAL_STOPS) if i >= 0), default=len(text))
    return text[:cut]


def behaviour_signatures(record: dict, completions: list[str]) -> list[str | None]:
    """Each completion's behaviour signature on the record's tests, run in the sandbox (None: sandbox
    failure)."""
    from lm_eval_noise.code_tasks.humaneval import HUMANEVAL_LIMITS, humaneval_job
    from lm_eval_noise.sandbox import Sandbox

    problem = {"prompt": record["prompt"], "test": record["test"], "entry_point": record["entry_point"]}
    jobs = [humaneval_job(problem, truncate_completion(c)) for c in completions]
    with Sandbox(HUMANEVAL_LIMITS) as sandbox:
        return [result.behaviour for result in sandbox.run_many(jobs)]
