"""Small helpers without a home of their own."""
from .images import IMG_EXTENSIONS, list_images

__all__ = ['IMG_EXTENSIONS', 'list_images']
