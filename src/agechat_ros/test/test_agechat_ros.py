"""Unit tests of agechat_ros: image/audio/time conversions, parameter validation."""

import array
import re

import numpy as np
import pytest
import rclpy
from sensor_msgs.msg import Image

from agechat_ros import ConversionError
from agechat_ros.audio import audio_info, check_audio_info, float_to_pcm_s16le, pcm_s16le_to_float
from agechat_ros.image import bgr_to_compressed, bgr_to_image, compressed_to_bgr, image_to_bgr
from agechat_ros.params import Param, ParameterError, declare_and_read
from agechat_ros.time import elapsed_ms, ns_to_time, time_to_ns

RNG = np.random.default_rng(0)
BGR = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


def _raw(pixels: np.ndarray, encoding: str, pad: int = 0) -> Image:
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    rows = np.hstack([rows, np.zeros((height, pad), np.uint8)])
    return Image(
        height=height,
        width=width,
        encoding=encoding,
        step=rows.shape[1],
        data=array.array('B', rows.tobytes()),
    )


@pytest.mark.parametrize(
    'encoding,pixels',
    [
        ('bgr8', BGR),
        ('rgb8', BGR[:, :, ::-1]),
        ('bgra8', np.dstack([BGR, np.full(BGR.shape[:2], 9, np.uint8)])),
        ('rgba8', np.dstack([BGR[:, :, ::-1], np.full(BGR.shape[:2], 9, np.uint8)])),
    ],
)
def test_colour_encodings_decode_to_bgr(encoding, pixels):
    assert np.array_equal(image_to_bgr(_raw(pixels, encoding)), BGR)


def test_row_padding_is_skipped():
    assert np.array_equal(image_to_bgr(_raw(BGR, 'bgr8', pad=3)), BGR)


def test_mono8_becomes_grey_bgr():
    grey = BGR[:, :, 0]
    out = image_to_bgr(_raw(grey, 'mono8'))
    assert out.shape == (5, 7, 3) and all(np.array_equal(out[:, :, c], grey) for c in range(3))


@pytest.mark.parametrize(
    'mutate,needle',
    [
        (lambda m: setattr(m, 'encoding', 'yuv422'), "unsupported image encoding 'yuv422'"),
        (lambda m: setattr(m, 'width', 0), 'zero size'),
        (lambda m: setattr(m, 'data', m.data[:-1]), 'expected height*step'),
        (lambda m: setattr(m, 'step', 3), 'step 3 is smaller'),
        (
            lambda m: (setattr(m, 'width', 100000), setattr(m, 'height', 100000)),
            'exceeds the limit',
        ),
    ],
)
def test_bad_images_are_refused_with_a_reason(mutate, needle):
    msg = _raw(BGR, 'bgr8')
    mutate(msg)
    with pytest.raises(ConversionError, match=re.escape(needle)):
        image_to_bgr(msg)


def test_bgr_to_image_round_trip_both_encodings():
    for encoding in ('bgr8', 'rgb8'):
        assert np.array_equal(image_to_bgr(bgr_to_image(BGR, encoding=encoding)), BGR)


def test_compressed_png_round_trip_and_garbage_refused():
    assert np.array_equal(compressed_to_bgr(bgr_to_compressed(BGR, fmt='png')), BGR)
    garbage = bgr_to_compressed(BGR, fmt='png')
    garbage.data = array.array('B', b'not an image')
    with pytest.raises(ConversionError, match='could not decode'):
        compressed_to_bgr(garbage)


def test_pcm_round_trip_and_stereo_mixdown():
    samples = np.array([0.0, 0.5, -0.5, 0.999, -1.0], np.float32)
    decoded = pcm_s16le_to_float(float_to_pcm_s16le(samples))
    assert np.allclose(decoded, samples, atol=1 / 32767)
    stereo = np.array([[0.5, -0.5], [0.25, 0.25]], np.float32).reshape(-1)
    assert np.allclose(
        pcm_s16le_to_float(float_to_pcm_s16le(stereo), channels=2), [0.0, 0.25], atol=1e-4
    )


def test_pcm_odd_byte_count_and_nan_are_handled():
    with pytest.raises(ConversionError, match='not a whole number'):
        pcm_s16le_to_float(b'\x00\x01\x02')
    assert (
        float_to_pcm_s16le(np.array([np.nan, 2.0, -2.0]))
        == np.array([0, 32767, -32768], '<i2').tobytes()
    )


def test_audio_info_describes_s16le_and_check_refuses_others():
    info = audio_info(16000)
    check_audio_info(info)
    assert (info.sample_format, info.bitrate) == ('S16LE', 256000)
    info.sample_format = 'F32LE'
    with pytest.raises(ConversionError, match='S16LE'):
        check_audio_info(info)


def test_time_conversions():
    assert time_to_ns(ns_to_time(1_234_567_890_123)) == 1_234_567_890_123
    assert elapsed_ms(ns_to_time(1_000_000_000), ns_to_time(1_250_000_000)) == 250.0
    assert np.isnan(elapsed_ms(ns_to_time(0), ns_to_time(5)))


def test_parameter_validation_lists_every_problem():
    rclpy.init()
    try:
        node = rclpy.create_node(
            'param_test',
            parameter_overrides=[
                rclpy.parameter.Parameter('rate', value=-1.0),
                rclpy.parameter.Parameter('mode', value='fast'),
            ],
        )
        specs = [
            Param('rate', 10.0, 'frames per second', low=0.1),
            Param('mode', 'auto', 'mode', choices=['auto']),
            Param('ok', 3, 'fine'),
        ]
        with pytest.raises(ParameterError) as error:
            declare_and_read(node, specs)
        assert 'rate = -1.0 must be >= 0.1' in str(error.value)
        assert "mode = 'fast' must be one of ['auto']" in str(error.value)
        node.destroy_node()
        good = rclpy.create_node('param_test_ok')
        assert declare_and_read(good, specs).rate == 10.0
        good.destroy_node()
    finally:
        rclpy.shutdown()
