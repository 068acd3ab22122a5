"""Training data: sources (objects, backgrounds), PyBullet rendering, composites and episode sampling."""
