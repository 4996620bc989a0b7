"""What every inference backend provides."""
import numpy as np


class BackendError(Exception):
    """A backend cannot start or run; the message says why and what to do."""


class Backend:
    """image [1, H, W, 3] + state [1, S] -> actions [chunk_size, action_dim] float32."""

    name = 'backend'

    def infer(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict:
        """Key facts for logs and diagnostics (files, providers, mode)."""
        return {'backend': self.name}

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
