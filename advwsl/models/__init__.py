"""Models: backbones (registered in :mod:`.backbones`) with weakly supervised pooling heads (each registered
as a zoo model in :mod:`.heads`), CAM primitives (:mod:`.cams`), Grad-CAM, U-Net, the small reference
networks of appendix V, the model zoo (:mod:`.zoo`) and checkpoints (:mod:`.checkpoints`)."""

from . import gradcam, heads, small, unet  # noqa: F401  (their modules register the zoo's architectures)
from .backbones import (ResNetFeatures, ResNetMini, create_backbone, describe_backbone_families, get_backbone,
                        imagenet_weights_path, list_backbones, read_state_dict, register_backbone,
                        register_backbone_resolver)
from .timm_backbone import TimmFeatures, timm_weights_paths
from .cams import (CAM_RULES, cam_masks, class_maps, class_masks, dice_iou, foreground_masks, pixel_predictions,
                   upsample_cams)
from .checkpoints import checkpoint_info, checkpoint_paths, load_model, save_model
from .gradcam import GradCAMClassifier, GradCAMView, grad_cam, gradcam_view, last_feature_layer, with_grad_cam
from .heads import (CAMHead, DeepMILHead, DeepMILMultiHead, LSEHead, MaxHead, WildcatHead, average_pool, lse_pool,
                    max_pool, wildcat_pool)
from .normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize
from .unet import UNet
from .wsl import WSLClassifier, tta_cams
from .zoo import (ModelSpec, create_model, describe_models, list_models, model_info, register_head,
                  register_model)

__all__ = [
    "ResNetFeatures", "ResNetMini", "create_backbone", "describe_backbone_families", "get_backbone",
    "imagenet_weights_path", "list_backbones", "read_state_dict", "register_backbone", "register_backbone_resolver",
    "TimmFeatures", "timm_weights_paths",
    "CAM_RULES", "cam_masks", "class_maps", "class_masks", "dice_iou", "foreground_masks", "pixel_predictions",
    "upsample_cams", "grad_cam", "GradCAMClassifier", "gradcam_view", "GradCAMView", "with_grad_cam", "last_feature_layer",
    "CAMHead", "MaxHead", "LSEHead", "WildcatHead", "DeepMILHead", "DeepMILMultiHead",
    "average_pool", "max_pool", "lse_pool", "wildcat_pool",
    "IMAGENET_MEAN", "IMAGENET_STD", "Normalize", "UNet", "WSLClassifier", "tta_cams",
    "ModelSpec", "create_model", "list_models", "model_info", "register_model", "register_head", "describe_models",
    "save_model", "load_model", "checkpoint_info", "checkpoint_paths",
]
