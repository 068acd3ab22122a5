"""The node's input limits in one place (docs/reliability.md). Plain constants, no ROS.

Frames: pixels per frame are the parameter ``max_image_pixels`` (default MAX_IMAGE_PIXELS); a
compressed frame's size is read from its PNG/JPEG header and refused before it is decoded.
Views (RegisterObject): MIN_VIEW_SIDE..MAX_VIEW_SIDE pixels a side, at most MAX_VIEW_PIXELS
pixels and MAX_VIEW_BYTES bytes of data each, at most MAX_VIEWS views and MAX_REQUEST_BYTES of
view data per request. Stored view PNGs are held to the same side limit when they are read back.
"""
MAX_IMAGE_PIXELS = 50_000_000  # default of the parameter max_image_pixels (camera frames)
MAX_COMPRESSED_BYTES = 64 * 1024 * 1024  # one CompressedImage frame

MAX_VIEWS = 32  # views per object (per RegisterObject request)
MIN_VIEW_SIDE = 8
MAX_VIEW_SIDE = 4096
MAX_VIEW_PIXELS = 4 * 1024 * 1024  # e.g. 2048x2048; views are resized to the model's view size
MAX_VIEW_BYTES = 16 * 1024 * 1024  # one view's `data` (2048x2048 rgba8)
MAX_REQUEST_BYTES = 64 * 1024 * 1024  # all views of one request together
