"""Rewrite the include dirs baked into the ROS message wheels' CMake exports.

The PyPI message wheels were built under /opt/python/cp3XX-cp3XX; their
`share/*/cmake/export_*__rosidl_generator_pyExport.cmake` files name that interpreter's include
dir and NumPy's. Point them at the venv's interpreter. Idempotent; touches only files in the venv.
"""
import re
import sys
import sysconfig
from pathlib import Path

import numpy

venv = Path(sys.argv[1])
python_include = sysconfig.get_paths()["include"]
numpy_include = numpy.get_include()
# The foreign paths: .../include/python3.X and .../site-packages/numpy/(_)core/include
foreign_python = re.compile(r"/opt/python/[^;\"\s]*/include/python3\.\d+")
foreign_numpy = re.compile(r"/opt/python/[^;\"\s]*/site-packages/numpy/_?core/include")

changed = 0
for path in venv.glob("share/*/cmake/export_*__rosidl_generator_pyExport*.cmake"):
    text = path.read_text()
    new = foreign_numpy.sub(numpy_include, foreign_python.sub(python_include, text))
    if new != text:
        path.write_text(new)
        changed += 1
if changed:
    print(f"[bootstrap] fixed include dirs in {changed} CMake export files")
