"""Camera frame -> the model's `image` input, and rover state -> the `state` input.

The model takes the whole camera view: frames are resized (never cropped) to the
manifest's W x H with cv2.INTER_AREA, exactly as rover_quantize prepares its
calibration and validation frames. A camera whose aspect ratio differs from the
model's is therefore stretched the same way at calibration and at run time, so
the policy sees what it was quantized and validated on. Scaling to [0, 1] and
the ImageNet/dataset normalization happen inside the ONNX graph, not here.
"""
import cv2
import numpy as np

_DTYPES = {'uint8': np.uint8, 'float32': np.float32}


class ImagePreprocessor:
    """BGR HxWx3 uint8 -> [1, H, W, 3] in the model's dtype and colour order, C-contiguous."""

    def __init__(self, height: int, width: int, dtype: str = 'uint8', color: str = 'rgb'):
        if dtype not in _DTYPES:
            raise ValueError(f'unsupported model image dtype {dtype!r}; expected uint8 or float32')
        if color.lower() not in ('rgb', 'bgr', ''):
            raise ValueError(f'unsupported model image colour order {color!r}')
        self.height = int(height)
        self.width = int(width)
        self.dtype = _DTYPES[dtype]
        self.to_rgb = color.lower() != 'bgr'

    @classmethod
    def for_model(cls, model) -> 'ImagePreprocessor':
        return cls(model.image_height, model.image_width, model.image.dtype, model.image.color or 'rgb')

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        return prepare_image(bgr, self.height, self.width, self.dtype, self.to_rgb)


def prepare_image(bgr: np.ndarray, height: int, width: int, dtype=np.uint8, to_rgb: bool = True) -> np.ndarray:
    if not isinstance(bgr, np.ndarray) or bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(
            f'expected an HxWx3 uint8 BGR frame, got {getattr(bgr, "dtype", type(bgr))} '
            f'{getattr(bgr, "shape", "")}')
    if bgr.shape[:2] != (height, width):
        bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
    pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if to_rgb else bgr
    batch = np.ascontiguousarray(pixels[np.newaxis])
    return batch if batch.dtype == dtype else batch.astype(dtype)


def prepare_state(values, state_dim: int) -> np.ndarray:
    """A float32 [1, state_dim] array of the raw (unnormalized) state."""
    state = np.asarray(values, dtype=np.float32).reshape(1, -1)
    if state.shape[1] != state_dim:
        raise ValueError(f'state has {state.shape[1]} values, the model expects {state_dim}')
    if not np.all(np.isfinite(state)):
        raise ValueError(f'state contains NaN or inf: {state.ravel().tolist()}')
    return np.ascontiguousarray(state)
