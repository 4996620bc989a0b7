import numpy as np
import pytest

from model_fixtures import reference_actions
from rover_policy.model_dir import load_model_dir
from rover_policy.preprocessing import ImagePreprocessor, prepare_image, prepare_state


def test_same_size_frame_is_only_colour_swapped_and_batched():
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    image = prepare_image(bgr, 48, 64)
    assert image.shape == (1, 48, 64, 3) and image.dtype == np.uint8
    assert image.flags['C_CONTIGUOUS']
    assert np.array_equal(image[0], bgr[:, :, ::-1])


def test_downscale_is_area_average_of_the_whole_view():
    # 2x2 blocks of a known BGR pattern: INTER_AREA at exactly half size is the block mean,
    # and nothing is cropped (corner blocks keep their colours).
    block_colours = np.array([[[10, 20, 30], [50, 60, 70]], [[90, 100, 110], [130, 140, 150]]], np.uint8)
    bgr = block_colours.repeat(4, axis=0).repeat(4, axis=1)  # 8x8, each colour a 4x4 block
    bgr[0, 0] = [14, 24, 34]  # one pixel off: the block mean moves by 4/4 = 1
    image = prepare_image(bgr, 4, 4)
    rgb = block_colours[:, :, ::-1].repeat(2, axis=0).repeat(2, axis=1)
    expected = rgb.astype(int)
    expected[0, 0] += 1
    assert np.array_equal(image[0].astype(int), expected)


def test_aspect_change_stretches_instead_of_cropping():
    # A 4:3 model fed 16:9 frames: the left and right edges must survive (no centre crop).
    bgr = np.zeros((360, 640, 3), np.uint8)
    bgr[:, :40] = (255, 0, 0)     # blue left band
    bgr[:, -40:] = (0, 0, 255)    # red right band
    image = prepare_image(bgr, 48, 64)[0]
    assert image[:, 0].tolist() == [[0, 0, 255]] * 48      # RGB blue at the left edge
    assert image[:, -1].tolist() == [[255, 0, 0]] * 48     # RGB red at the right edge


def test_bgr_model_and_float_dtype():
    bgr = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3)
    keep = ImagePreprocessor(2, 2, 'float32', 'bgr')(bgr)
    assert keep.dtype == np.float32 and np.array_equal(keep[0], bgr.astype(np.float32))


@pytest.mark.parametrize('bad', [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32),
                                 np.zeros((4, 4, 4), np.uint8), [[1, 2, 3]]])
def test_rejects_non_bgr_frames(bad):
    with pytest.raises(ValueError, match='HxWx3 uint8 BGR'):
        prepare_image(bad, 4, 4)


def test_unsupported_model_dtype():
    with pytest.raises(ValueError, match='unsupported model image dtype'):
        ImagePreprocessor(4, 4, 'int16')


def test_state():
    state = prepare_state([0.25, -1.0], 2)
    assert state.dtype == np.float32 and state.shape == (1, 2) and state.tolist() == [[0.25, -1.0]]
    with pytest.raises(ValueError, match='expects 2'):
        prepare_state([0.1], 2)
    with pytest.raises(ValueError, match='NaN'):
        prepare_state([float('nan'), 0.0], 2)


def test_matches_what_the_exported_model_expects(tiny_model_dir):
    # The exporter's contract: uint8 RGB NHWC; feeding BGR instead changes the actions.
    model = load_model_dir(tiny_model_dir)
    rng = np.random.default_rng(5)
    bgr = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    bgr[..., 0] = 255  # strongly blue so the channel order matters
    state = prepare_state([0.0, 0.0], 2)
    prepared = ImagePreprocessor.for_model(model)(bgr)
    by_hand = np.ascontiguousarray(bgr[np.newaxis, :, :, ::-1])
    assert np.array_equal(prepared, by_hand)
    actions = reference_actions(tiny_model_dir, prepared, state)
    swapped = reference_actions(tiny_model_dir, np.ascontiguousarray(bgr[np.newaxis]), state)
    assert np.abs(actions - swapped).max() > 1e-3


def test_matches_rover_quantize_calibration_frames():
    """rover_quantize decodes bag frames to RGB and fits them with INTER_AREA; same pixels here."""
    import importlib
    import importlib.util
    import os
    import sys
    source = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          'rover_quantize')
    if importlib.util.find_spec('rover_quantize') is None:
        if not os.path.isdir(os.path.join(source, 'rover_quantize')):
            pytest.skip('rover_quantize is not available')
        sys.path.insert(0, source)
    try:
        bags = importlib.import_module('rover_quantize.bags')
    finally:
        if source in sys.path:
            sys.path.remove(source)
    rng = np.random.default_rng(9)
    for shape, model_hw in [((360, 640, 3), (48, 64)), ((480, 640, 3), (48, 64)), ((48, 64, 3), (48, 64))]:
        bgr = rng.integers(0, 256, shape, dtype=np.uint8)
        theirs = bags.fit_image(np.ascontiguousarray(bgr[..., ::-1]), model_hw)
        assert np.array_equal(prepare_image(bgr, *model_hw)[0], theirs)
