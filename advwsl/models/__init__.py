"""Models: ResNet backbones with weakly supervised pooling heads (``WSLClassifier``), Grad-CAM, U-Net,
the small reference networks of appendix V, and the model zoo with checkpoints."""

from .backbones import BACKBONES, ResNetFeatures, ResNetMini, create_backbone, imagenet_weights_path
from .gradcam import grad_cam
from .heads import (CAMHead, DeepMILHead, DeepMILMultiHead, LSEHead, MaxHead, WildcatHead, average_pool,
                    class_masks, foreground_masks, lse_pool, max_pool, pixel_predictions, wildcat_pool)
from .normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize
from .unet import UNet
from .wsl import WSLClassifier, tta_cams, upsample_cams
from .zoo import (ModelSpec, checkpoint_info, checkpoint_paths, create_model, describe_models, list_models,
                  load_model, model_info, register_model, save_model)

__all__ = [
    "BACKBONES", "ResNetFeatures", "ResNetMini", "create_backbone", "imagenet_weights_path",
    "grad_cam",
    "CAMHead", "MaxHead", "LSEHead", "WildcatHead", "DeepMILHead", "DeepMILMultiHead",
    "average_pool", "max_pool", "lse_pool", "wildcat_pool",
    "pixel_predictions", "foreground_masks", "class_masks",
    "IMAGENET_MEAN", "IMAGENET_STD", "Normalize", "UNet",
    "WSLClassifier", "upsample_cams", "tta_cams",
    "ModelSpec", "create_model", "list_models", "model_info", "register_model", "describe_models",
    "save_model", "load_model", "checkpoint_info", "checkpoint_paths",
]
