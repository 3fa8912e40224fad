"""array_view: a Flower Array read as a view gives what Array.numpy() gives, and anything the
view does not recognise (including a hostile client's bytes) is left to Array.numpy()."""

from __future__ import annotations

import io

import numpy as np
import pytest
from flwr.app import Array

from verde.engines.flower import npy_view
from verde.engines.flower.npy_view import array_view


@pytest.mark.parametrize("value", [
    np.arange(12, dtype=np.float32).reshape(3, 4),
    np.linspace(-1, 1, 7),
    np.arange(5, dtype=np.float16),
    np.arange(6, dtype=">f4").reshape(2, 3),  # big-endian stays big-endian, as numpy loads it
    np.arange(4, dtype=np.int64),
    np.array([True, False, True]),
    np.array(2.5, dtype=np.float32),
    np.zeros((0, 3), dtype=np.float32),
])
def test_view_equals_numpy_load(value: np.ndarray) -> None:
    arr = Array(value)
    view, loaded = array_view(arr), arr.numpy()
    assert view.dtype == loaded.dtype and view.shape == loaded.shape
    np.testing.assert_array_equal(view, loaded)
    assert not view.flags.writeable  # a view of the message's bytes: never written


def test_the_header_is_parsed_once_per_shape_and_dtype() -> None:
    npy_view._parsed_header.cache_clear()
    arrays = [Array(np.full((8, 8), i, dtype=np.float32)) for i in range(50)]
    for i, arr in enumerate(arrays):
        assert array_view(arr)[0, 0] == i
    info = npy_view._parsed_header.cache_info()
    assert info.misses == 1 and info.hits == 49


def _with_data(value: np.ndarray, data: bytes) -> Array:
    return Array(dtype=str(value.dtype), shape=tuple(value.shape), stype="numpy.ndarray",
                 data=data)


def test_fortran_order_goes_to_numpy() -> None:
    value = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    view = array_view(Array(value))
    np.testing.assert_array_equal(view, value)


def test_trailing_bytes_are_what_numpy_makes_of_them() -> None:
    value = np.arange(4, dtype=np.float32)
    arr = _with_data(value, Array(value).data + b"\x00" * 8)
    np.testing.assert_array_equal(array_view(arr), arr.numpy())


def test_truncated_data_is_numpys_error() -> None:
    value = np.arange(4, dtype=np.float32)
    arr = _with_data(value, Array(value).data[:-3])
    with pytest.raises(ValueError):
        arr.numpy()
    with pytest.raises(ValueError):
        array_view(arr)


def test_a_pickled_array_is_refused_not_loaded() -> None:
    class Boom:
        def __reduce__(self):  # unpickling this would run code
            return (pytest.fail, ("unpickled a client's bytes",))

    value = np.array([Boom()], dtype=object)
    buffer = io.BytesIO()
    np.save(buffer, value, allow_pickle=True)
    arr = Array(dtype="object", shape=(1,), stype="numpy.ndarray", data=buffer.getvalue())
    with pytest.raises(ValueError, match="allow_pickle"):
        array_view(arr)


@pytest.mark.parametrize("data", [b"", b"\x93NUMPY", b"not an npy file at all",
                                  b"\x93NUMPY\x01\x00\xff\x00{'descr': '<f4'"])
def test_garbage_is_numpys_error(data: bytes) -> None:
    arr = Array(dtype="float32", shape=(1,), stype="numpy.ndarray", data=data)
    with pytest.raises((ValueError, EOFError)):
        array_view(arr)


def test_another_serialisation_type_is_flowers_error() -> None:
    arr = Array(dtype="float32", shape=(1,), stype="torch.tensor", data=b"\x00" * 4)
    with pytest.raises(TypeError, match="Unsupported serialization type"):
        array_view(arr)
