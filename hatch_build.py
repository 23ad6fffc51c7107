"""Ship tasks/ inside regular wheels; editable installs read them from the checkout."""

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if version == "standard":
            build_data["force_include"]["tasks"] = "lm_eval_noise/tasks"
