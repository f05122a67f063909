"""CAMELYON16 weakly supervised patch protocol (section 2.1.2.3): ASAP annotations (:mod:`.annotations`),
patch sampling and calibration (:mod:`.sampling`), the end-to-end preparation (:mod:`.prepare`), the prepared
patches as a dataset (:mod:`.dataset`) and toy slides (:mod:`.toy`). Slides are read with
:mod:`advwsl.data.slides`."""

from ..slides import open_slide
from .annotations import Annotation, rasterize, read_asap_xml, write_asap_xml
from .dataset import Camelyon16Patches
from .prepare import prepare_camelyon16
from .sampling import ProtocolConfig

__all__ = ["Annotation", "Camelyon16Patches", "ProtocolConfig", "open_slide", "prepare_camelyon16", "rasterize",
           "read_asap_xml", "write_asap_xml"]
