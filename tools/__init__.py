"""Developer tools, not installed with the package: the demo, the soak and fault run, the DDS
delivery probe and the speed benchmark. Run from the repository root: python -m tools.<name>."""
