"""Small helpers without a home of their own."""
from .images import IMG_EXTENSIONS, list_images
from .log import log_message

__all__ = ['IMG_EXTENSIONS', 'list_images', 'log_message']
