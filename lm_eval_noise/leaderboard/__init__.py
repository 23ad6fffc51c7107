"""Tables, leaderboard records and plots built from lm-eval result files alone."""

from lm_eval_noise.leaderboard.directions import direction
from lm_eval_noise.leaderboard.method import Method, describe_method, method_label
from lm_eval_noise.leaderboard.records import keep_newest, to_leaderboard_record, write_leaderboard_records
from lm_eval_noise.results.files import ResultsError, find_results_files, load_results
__all__ = [
    "Method",
    "ResultsError",
    "describe_method",
    "direction",
    "find_results_files",
    "keep_newest",
    "load_results",
    "method_label",
    "to_leaderboard_record",
    "write_leaderboard_records",
]
