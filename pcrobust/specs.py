"""The tables of a plan that every section shares: the model, the data, the run's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pcrobust.schema import Schema

MAX_TIMESTEPS = 1000  # a bound, so a mistyped T is refused instead of running for hours

Device = Literal["auto", "cpu", "cuda"]
ModelOptions = dict[str, str | int | float | bool]


def option_strings(options: ModelOptions) -> dict[str, str]:
    """Model options as the strings a model's ``build`` receives (``true``/``false`` for booleans)."""
    return {key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in options.items()}

IntervalMethod = Literal["wilson", "clopper-pearson", "bootstrap"]
Precision = Literal["float32", "bf16"]


class ModelSpec(Schema):
    plugin: str = Field(min_length=1, description="model-family plugin, e.g. predify")
    name: str | None = Field(None, description="model of the plugin (default: the plugin's default model)")
    weights: str | None = Field(None, description="checkpoint instead of the shipped one")
    options: ModelOptions = Field(default_factory=dict,
                                                        description="model options, e.g. beta = 0.8")
    gradient_mode: str | None = Field(None, description="exact or detached, where the model offers it "
                                                        "(default: the model's)")


class DataSpec(Schema):
    dataset: str | None = Field(None, description="dataset (default: the model's)")
    split: str = Field("test", description="split of the dataset")
    path: str | None = Field(None, min_length=1, description="a folder of your own images, read with the "
                             "dataset's classes and preprocessing (class folders, or flat with labels.txt)")
    masks: str | None = Field(None, min_length=1, description="a folder of segmentation masks for the images of "
                              "path: one per image, same relative path and stem, nonzero on the object")
    n: int | None = Field(None, ge=1, description="images evaluated (default: the whole split)")
    seed: int = Field(0, ge=0, description="seed of the permutation that orders the split")


class RunSpec(Schema):
    timesteps: int | None = Field(None, ge=0, le=MAX_TIMESTEPS,
                                  description=f"recurrent updates T, at most {MAX_TIMESTEPS} (default: the model's)")
    device: Device = Field("auto", description="auto, cpu or cuda")
    precision: Precision = Field("float32", description="float32, or bf16 (autocast of the model's convolutions "
                                                        "and matrix products, in every section and attack)")
    checkpoint_timesteps: bool = Field(False, description="recompute each timestep's activations in the backward "
                                       "pass instead of keeping them: exact gradients through long unrolls in "
                                       "the memory of about one timestep, for more compute (models that support it)")
    batch_size: int = Field(500, ge=1, description="inputs per forward call")
    images_per_unit: int = Field(500, ge=1, description="images per stored unit of work")
    seed: int = Field(0, ge=0, description="seed of every random draw (noise, random starts, targets)")
    level: float = Field(0.95, gt=0, lt=1, description="confidence level of intervals")
    interval: IntervalMethod = Field("wilson", description="interval of binomial rates (bootstrap: percentile "
                                     "bootstrap over images, seeded by the run's seed, paired for the change)")
