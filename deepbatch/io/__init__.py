"""Turning whatever the caller passes into HxWx3 uint8 BGR images, with errors that name the image."""
