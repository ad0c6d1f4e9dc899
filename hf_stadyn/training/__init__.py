"""Training: video classification on ``transformers.Trainer`` (StaticDropout, bias tracking), AVOS segmentation.

Classification: :class:`StadynTrainer` (a ``transformers.Trainer``), :func:`run_classification` (the
``stadyn train --task classification`` run), our options :class:`StadynArguments` /
:class:`DataArguments` / :class:`ModelArguments` (``HfArgumentParser`` dataclasses beside
``TrainingArguments``), datasets and :class:`VideoClassificationCollator`.
"""

from .args import CLASSIFICATION_DEFAULTS, DataArguments, ModelArguments, StadynArguments, default_learning_rate
from .augment import AugmentedDataset, StylizeAugment
from .classification import (
    ClassificationTrainingConfig,
    ClassificationTrainResult,
    build_classifier,
    evaluate_classifier,
    run_classification,
    train_classification,
)
from .data import (
    ClipTensorDataset,
    ShuffledFramesDataset,
    VideoClassificationCollator,
    VideoFolderDataset,
    hf_video_datasets,
    synth_datasets,
    video_folder_datasets,
)


def __getattr__(name: str):
    # StadynTrainer imports transformers.Trainer: loaded on first use
    if name in ("StadynTrainer", "compute_accuracy", "LossTerm"):
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CLASSIFICATION_DEFAULTS",
    "AugmentedDataset",
    "ClassificationTrainResult",
    "ClassificationTrainingConfig",
    "ClipTensorDataset",
    "DataArguments",
    "LossTerm",
    "ModelArguments",
    "ShuffledFramesDataset",
    "StadynArguments",
    "StadynTrainer",
    "StylizeAugment",
    "VideoClassificationCollator",
    "VideoFolderDataset",
    "build_classifier",
    "compute_accuracy",
    "default_learning_rate",
    "evaluate_classifier",
    "hf_video_datasets",
    "run_classification",
    "synth_datasets",
    "train_classification",
    "video_folder_datasets",
]
