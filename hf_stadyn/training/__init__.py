"""Training loops: video classification with StaticDropout and bias tracking, AVOS segmentation."""

# classification (StaticDropout, its controls, bias tracking)
from .augment import AugmentedDataset, StylizeAugment
from .classification import (
    ClassificationTrainingConfig,
    ClassificationTrainResult,
    ClipTensorDataset,
    VideoFolderDataset,
    build_classifier,
    evaluate_classifier,
    hf_video_datasets,
    synth_datasets,
    train_classification,
    video_folder_datasets,
)

__all__ = [
    "AugmentedDataset",
    "ClassificationTrainResult",
    "ClassificationTrainingConfig",
    "ClipTensorDataset",
    "StylizeAugment",
    "VideoFolderDataset",
    "build_classifier",
    "evaluate_classifier",
    "hf_video_datasets",
    "synth_datasets",
    "train_classification",
    "video_folder_datasets",
]
