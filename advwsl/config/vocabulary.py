"""The shared vocabulary of the command line as config fields: one spelling, one type and one meaning per
concept, declared once here and used by every job config that has the concept (``seed: int = SEED()``).
The kinds of values that several layers share (splits, CAM rules, precisions) are ``Literal`` types here, so
the library's checks, the options' choices and the docs read one list."""

from __future__ import annotations

from typing import Any, Literal

from .core import option

__all__ = ["Split", "CamRule", "Precision", "BudgetPreset", "CAM_RULES", "PRECISIONS", "SPLITS", "MODEL",
           "CHECKPOINT", "DATASET", "DATA_ROOT", "DATASET_KWARGS", "SPLIT", "N_SAMPLES", "BATCH_SIZE", "ATTACKS",
           "BUDGET", "EPSILON", "LEVELS", "DEVICE", "SEED", "OUT", "RESUME", "PROGRESS", "PRECISION",
           "CHANNELS_LAST", "RETRAIN", "CAM_RULE", "BUDGET_HELP"]

Split = Literal["train", "valid", "test"]
#: How a CAM is binarized (:mod:`advwsl.models.cams`): ``zero`` (M_c > 0), ``argmax`` (of [0, M], size
#: supervision), ``minmax`` (min-max normalized, threshold 0.5).
CamRule = Literal["zero", "argmax", "minmax"]
#: Precision attacks run in (:mod:`advwsl.attacks.precision`); every result is verified in fp32.
Precision = Literal["fp32", "tf32", "bf16"]
#: Budget presets of the robustness evaluation: section A V-7's, or a first look in minutes.
BudgetPreset = Literal["reference", "quick"]
SPLITS: tuple[str, ...] = Split.__args__
CAM_RULES: tuple[str, ...] = CamRule.__args__
PRECISIONS: tuple[str, ...] = Precision.__args__

BUDGET_HELP = ("Attack budget: N gradient steps for every attack (C&W: 4 x N/4 with Table A V-9's hyper-parameters), "
               "quick (every attack's quick budget: DDN 100, C&W 4x25, DeepFool 50; minutes), reference, or "
               "ATTACK=N for one (repeatable; C&W also SEARCHESxSTEPS, e.g. cw=9x10000). Default: each attack's "
               "reference budget (DDN 1000, C&W 9x10000, DeepFool 100; section A V-7).")


def MODEL(default: str | None = "digits-cnn", help: str | None = None) -> Any:
    return option(default, help or (
        "Model: a built-in trained model (digits-cnn, mnist-cnn; wildcat, cam, max, lse, deepmil, ...: weakly "
        "supervised models on the synthetic histology set; trained on first use and cached), a checkpoint path, a "
        "zoo architecture with --checkpoint, or your own model as path/to/file.py:function (returns an nn.Module on "
        "images in [0, 1]; pass --dataset). `advwsl models` lists them."))


def CHECKPOINT() -> Any:
    return option(None, "Trained weights for --model's architecture: <stem>.safetensors + <stem>.json.")


def DATASET(default: str | None = None, help: str | None = None) -> Any:
    return option(default, help or "Dataset (`advwsl data list`). Default: the data the model was trained on.")


def DATA_ROOT() -> Any:
    return option(None, "Folder of the dataset on disk (needed by every dataset but synthetic, digits and mnist-5k).")


def DATASET_KWARGS() -> Any:
    return option(help="Dataset options as a JSON object, e.g. '{\"num_classes\": 4}'.", default_factory=dict,
                  metavar="JSON")


def SPLIT(default: str = "test") -> Any:
    return option(default, "Dataset split.")


def N_SAMPLES() -> Any:
    return option(None, "Use the first N samples of the split (default: all).", low=1)


def BATCH_SIZE(default: int | None = 128) -> Any:
    return option(default, "Samples per batch.", low=1)


def ATTACKS(default: tuple[str, ...], help: str) -> Any:
    return option(default, help, flag="--attack", metavar="NAME[,NAME...]")


def BUDGET(**extra: Any) -> Any:
    return option((), BUDGET_HELP, multiple=True, metavar="N|quick|ATTACK=N", **extra)


def EPSILON(default: tuple[float, ...], help: str) -> Any:
    return option(default, help, low=0, low_open=True, metavar="EPS[,EPS...]")


def LEVELS() -> Any:
    return option(256, "Quantization levels of the adversarials (256 = 8-bit images); 0 = no quantization.", low=0)


def DEVICE() -> Any:
    return option(None, "cpu, cuda, cuda:N, mps or auto (default: the best available).")


def SEED(default: int | None = 0) -> Any:
    return option(default, "Random seed.")


def OUT() -> Any:
    return option(None, "Run directory to create (default runs/<command>-<timestamp>; never overwritten).")


def RESUME() -> Any:
    return option(None, "Continue the interrupted run in this directory.")


def PROGRESS() -> Any:
    return option(True, "Show progress bars; --no-progress prints a time-stamped line per finished batch instead.")


def PRECISION() -> Any:
    return option("fp32", "Precision the attacks run in; every result is verified (and, if needed, repaired) in "
                          "fp32. tf32 matters on CUDA only.")


def CHANNELS_LAST() -> Any:
    return option(False, "Run the attacks in the channels_last memory format.")


def RETRAIN() -> Any:
    return option(False, "Train a built-in model again (replacing its cached checkpoint, e.g. a corrupt one).",
                  short_flag=True)


def CAM_RULE(default: str | None = "minmax", help: str | None = None) -> Any:
    return option(default, help or "How CAMs are binarized: zero (M_c > 0, the reference's), argmax, or minmax "
                                   "(min-max normalized, threshold 0.5).")
