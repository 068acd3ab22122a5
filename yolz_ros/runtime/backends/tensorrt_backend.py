"""TensorRT 10 backend: engines built from the model folder's ONNX on first use, cached on disk.

Needs the TensorRT Python bindings (JetPack / python3-libnvinfer) and cuda-python for memory and
streams. Device buffers are allocated once, at the largest shapes of the optimisation profile, and
their addresses bound once; a frame only sets the input shapes and copies.
"""
from __future__ import annotations

import logging
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from yolz_ros.runtime.backends.base import Backend, BackendError
from yolz_ros.runtime.backends.engine_cache import EngineCache, EngineSpec
from yolz_ros.runtime.model_info import ModelInfo

MAX_VIEWS = 32  # views per embedder call; more are run in chunks
WORKSPACE_BYTES = 1 << 30

log = logging.getLogger("yolz_ros.tensorrt")


def import_tensorrt():
    """(tensorrt, cudart) modules; raises BackendError saying what is missing."""
    try:
        import tensorrt as trt
    except Exception as e:  # ImportError, or OSError when libnvinfer is missing
        raise BackendError(f"TensorRT Python bindings cannot be imported ({e}); on Jetson they "
                           "come with JetPack (python3-libnvinfer)") from e
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError as e:
            raise BackendError("cuda-python is needed with TensorRT: pip install cuda-python") \
                from e
    return trt, cudart


def _cuda(cudart, result):
    """Unpack a cuda-python call's (error, *values), raising on error."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        name = cudart.cudaGetErrorName(err)[1]
        raise BackendError(f"CUDA error {name.decode() if isinstance(name, bytes) else name}")
    return values[0] if len(values) == 1 else (values or None)


def gpu_count() -> int:
    _, cudart = import_tensorrt()
    err, count = cudart.cudaGetDeviceCount()
    return int(count) if err == cudart.cudaError_t.cudaSuccess else 0


def gpu_identity(cudart) -> Tuple[str, str]:
    """(GPU name, compute capability "major.minor") of the current device."""
    props = _cuda(cudart, cudart.cudaGetDeviceProperties(_cuda(cudart, cudart.cudaGetDevice())))
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else props.name
    return name.rstrip("\x00").strip(), f"{props.major}.{props.minor}"


Profile = Tuple[str, Tuple[int, ...], Tuple[int, ...], Tuple[int, ...]]


class _EngineRunner:
    """One engine, its execution context and device buffers sized for the profile's maximum."""

    def __init__(self, trt, cudart, engine, max_shapes: Dict[str, Tuple[int, ...]], stream):
        self._cudart, self._stream, self.engine = cudart, stream, engine
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
        shapes = {n: tuple(max_shapes.get(n, engine.get_tensor_shape(n))) for n in self.inputs}
        for n, shape in shapes.items():
            self.context.set_input_shape(n, shape)
        for n in self.outputs:
            shapes[n] = tuple(self.context.get_tensor_shape(n))
        self._buffers = {}
        for n, shape in shapes.items():
            nbytes = int(np.prod(shape)) * self.dtypes[n].itemsize
            self._buffers[n] = _cuda(cudart, cudart.cudaMalloc(nbytes))
            self.context.set_tensor_address(n, int(self._buffers[n]))

    def run(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Every output of the engine, by name."""
        cudart, stream = self._cudart, self._stream
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        for n in self.inputs:
            arr = np.ascontiguousarray(feeds[n], self.dtypes[n])
            self.context.set_input_shape(n, arr.shape)
            _cuda(cudart, cudart.cudaMemcpyAsync(self._buffers[n], arr.ctypes.data, arr.nbytes,
                                                 h2d, stream))
        if not self.context.execute_async_v3(int(stream)):
            raise BackendError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        outs = {}
        for n in self.outputs:
            out = np.empty(tuple(self.context.get_tensor_shape(n)), self.dtypes[n])
            _cuda(cudart, cudart.cudaMemcpyAsync(out.ctypes.data, self._buffers[n], out.nbytes,
                                                 cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                                                 stream))
            outs[n] = out
        _cuda(cudart, cudart.cudaStreamSynchronize(stream))  # also keeps `arr` alive until copied
        return outs

    def close(self) -> None:
        for ptr in self._buffers.values():
            self._cudart.cudaFree(ptr)
        self._buffers = {}


class TensorRTBackend(Backend):
    def __init__(self, info: ModelInfo, precision: str = "fp16", max_objects: int = 64,
                 cache_dir=None, logger: Optional[logging.Logger] = None):
        trt, cudart = import_tensorrt()
        self.log = logger or log
        self._trt, self._cudart = trt, cudart
        self._trt_logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._trt_logger)
        gpu_name, capability = gpu_identity(cudart)
        if precision == "fp16" and not getattr(trt.Builder(self._trt_logger),
                                               "platform_has_fast_fp16", True):
            self.log.warning(f"{gpu_name} has no fast FP16; building FP32 engines")
            precision = "fp32"
        self.precision = precision
        self.name = f"tensorrt-{precision}"
        self.version = trt.__version__
        self._stream = _cuda(cudart, cudart.cudaStreamCreate())
        cache = EngineCache(cache_dir, self.log)

        # yolz-model/2 embeds views at several sizes: one profile spans the smallest to the largest
        lo, hi, e = min(info.view_sizes), max(info.view_sizes), info.embedding_dim
        views = ("views", (1, 3, lo, lo), (min(info.views_per_object, MAX_VIEWS), 3, hi, hi),
                 (MAX_VIEWS, 3, hi, hi))
        objects = ("embeddings", (1, e), (min(4, max_objects), e), (max_objects, e))
        self._embedder = self._load(cache, info, "embedder", [views], gpu_name, capability)
        self._detector = self._load(cache, info, "detector", [objects], gpu_name, capability)
        missing = [o for o in info.outputs if o not in self._detector.outputs]
        if missing or len(self._embedder.outputs) != 1:
            raise BackendError(f"the engines' outputs (embedder {self._embedder.outputs}, "
                               f"detector {self._detector.outputs}) lack {missing or 'one'} of "
                               "model.json: re-export the model and clear the engine cache")
        self._outputs = list(info.outputs)
        self.max_objects = max_objects

    def _load(self, cache: EngineCache, info: ModelInfo, graph: str, profiles: Sequence[Profile],
              gpu_name: str, capability: str) -> _EngineRunner:
        onnx_path = info.embedder_path if graph == "embedder" else info.detector_path
        spec = EngineSpec(onnx_sha256=info.sha256[onnx_path.name],
                          tensorrt_version=self._trt.__version__, gpu_name=gpu_name,
                          compute_capability=capability, precision=self.precision,
                          profiles=tuple(profiles))
        engine, _ = cache.get_or_build(
            spec, build=lambda: self._build(onnx_path, profiles),
            deserialize=self._runtime.deserialize_cuda_engine,
            what=f"{info.model_id} {graph}")
        return _EngineRunner(self._trt, self._cudart, engine,
                             {name: mx for name, _, _, mx in profiles}, self._stream)

    def _build(self, onnx_path, profiles: Sequence[Profile]) -> bytes:
        trt = self._trt
        builder = trt.Builder(self._trt_logger)
        network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
        parser = trt.OnnxParser(network, self._trt_logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendError(f"TensorRT cannot parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        if self.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        for name, minimum, optimum, maximum in profiles:
            profile.set_shape(name, minimum, optimum, maximum)
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendError(f"TensorRT failed to build an engine from {onnx_path} "
                               "(see the TensorRT log above)")
        return bytes(serialized)

    def embed(self, views: np.ndarray) -> np.ndarray:
        out = self._embedder.outputs[0]
        chunks = [self._embedder.run({"views": views[i:i + MAX_VIEWS]})[out]
                  for i in range(0, len(views), MAX_VIEWS)]
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)

    def detect(self, image: np.ndarray, embeddings: np.ndarray) -> Dict[str, np.ndarray]:
        if len(embeddings) > self.max_objects:
            raise BackendError(f"{len(embeddings)} objects, but the engine was built for at most "
                               f"{self.max_objects} (raise max_objects)")
        outs = self._detector.run({"image": image, "embeddings": embeddings})
        return {n: outs[n] for n in self._outputs}

    def close(self) -> None:
        """Free device memory now (idempotent); otherwise done when the backend is collected."""
        for runner in (self._embedder, self._detector):
            runner.close()
        if self._stream is not None:
            self._cudart.cudaStreamDestroy(self._stream)
            self._stream = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: CUDA may already be gone
            pass
