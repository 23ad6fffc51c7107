"""lm-eval's output as this project reads it: `files` (results JSONs, samples JSONL), `schema` (what a
results JSON says: metric keys, seed, model) and `samples` (hf-noisy's per-sample record). The
leaderboard, `compare` and the sweep depend on this package; it depends on none of them."""
