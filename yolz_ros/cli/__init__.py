"""Command-line tools: register, list_objects, remove_object, camera_player (see each --help)."""
