"""Small helpers without a home of their own."""
from .dist import rank_and_world
from .image_formats import IMG_EXTENSIONS
from .images import list_images
from .log import log_message
from .optional import has_package

__all__ = [
    'IMG_EXTENSIONS', 'has_package', 'list_images', 'log_message',
    'rank_and_world'
]
