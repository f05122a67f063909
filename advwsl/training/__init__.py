"""Training (sections 2.1.3, 3.4.2, 4.4.2 and A V-6): the configuration of a run and the reference's
presets (:mod:`.recipes`), the loops (:mod:`.loops`: ``train_one_epoch``, ``evaluate``), full and k-fold
runs with resumable state (:mod:`.fit`, :mod:`.state`), and DistributedDataParallel under ``torchrun``
(:mod:`.distributed`). Import from here; the modules are the implementation."""

from .distributed import init_distributed, mean_over_ranks, shard_dataset
from .fit import FOLD_METRICS, SEGMENTATION_CLASSES, FitResult, FoldsResult, fit, fit_folds
from .loops import VOID_INDEX, Perturb, WithCams, evaluate, train_one_epoch, unwrap
from .recipes import (PRESETS, SCHEDULES, SEGMENTATION_PRESET, TrainConfig, build_datasets, build_model,
                      build_optimizer, build_scheduler, check_cam_class, check_data, check_model_options,
                      check_training_data, load_config, lr_factor, preset)
from .state import (append_metrics_csv, load_state, read_metrics_csv, rng_state, save_state, set_rng_state,
                    sync_metrics_csv)

__all__ = ["FOLD_METRICS", "FitResult", "FoldsResult", "PRESETS", "Perturb", "SCHEDULES", "SEGMENTATION_CLASSES",
           "SEGMENTATION_PRESET", "TrainConfig", "VOID_INDEX", "WithCams", "check_cam_class", "check_data",
           "check_model_options", "check_training_data",
           "append_metrics_csv", "build_datasets", "build_model", "build_optimizer", "build_scheduler", "evaluate",
           "fit", "fit_folds", "init_distributed", "load_config", "load_state", "lr_factor", "mean_over_ranks",
           "preset", "read_metrics_csv", "rng_state", "save_state", "set_rng_state", "shard_dataset",
           "sync_metrics_csv",
           "train_one_epoch", "unwrap"]
