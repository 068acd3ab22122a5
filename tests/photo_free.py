"""Tests build scenes from scikit-image's bundled photos only, so that nothing is downloaded."""
from contextlib import contextmanager

import pytest


@contextmanager
def skimage_photos_only():
    """training.data.photos sees no photo packages while inside: its pool falls back to the
    photos that scikit-image ships."""
    from training.data import photos

    mp = pytest.MonkeyPatch()
    mp.setattr(photos, "photo_files", lambda data_dir="data": {})
    photos.photo_pool.cache_clear()
    try:
        yield
    finally:
        mp.undo()
        photos.photo_pool.cache_clear()
