"""Slide reading moved to :mod:`advwsl.wsi.reader`; this name is kept for existing imports."""

from ...wsi.reader import OpenSlideSlide, Slide, TiffSlide, open_slide, openslide_available

__all__ = ["OpenSlideSlide", "Slide", "TiffSlide", "open_slide", "openslide_available"]
