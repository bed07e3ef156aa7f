"""ctypes declarations for the part of libspandsp (Debian ``libspandsp2``, 0.0.6) the fax engine
uses: a T.30 terminal over audio (``fax_state_t``) or over T.38 (``t38_terminal_state_t``), the
G.711 codec, and the T.30 statistics and result texts.

Signatures follow ``/usr/include/spandsp/*.h`` of 0.0.6. Every ``*_init`` gets NULL so the library
allocates its own state (the structs are opaque in the public headers). ``t30_stats_t`` is
version-specific: the layout below is the 0.0.6 one (15 ints) and is checked at load time
against a call on a fresh state.
"""

from __future__ import annotations

import ctypes
import enum
import functools
from ctypes import POINTER, c_char_p, c_int, c_int16, c_uint8, c_uint16, c_void_p

SONAME = "libspandsp.so.2"  # 0.0.6, Debian libspandsp2
SAMPLE_RATE = 8000
SAMPLES_PER_20MS = 160


class Stats(ctypes.Structure):
    _fields_ = [*((name, c_int) for name in (
        "bit_rate", "error_correcting_mode", "pages_tx", "pages_rx", "pages_in_file",
        "x_resolution", "y_resolution", "width", "length", "image_size", "encoding",
        "bad_rows", "longest_bad_row_run", "error_correcting_mode_retries", "current_status")),
        # room to spare: should a build's struct be longer, the library writes into this, not
        # past the end of ours
        ("_spare", c_int * 32)]


# T.30 callbacks (t30.h). Phase B and D return an int (T30_ERR_OK to go on).
PHASE_B_HANDLER = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p, c_int)
PHASE_D_HANDLER = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p, c_int)
PHASE_E_HANDLER = ctypes.CFUNCTYPE(None, c_void_p, c_void_p, c_int)
# t38_core.h: (t38_core_state_t *s, void *user_data, const uint8_t *buf, int len, int count)
T38_TX_PACKET_HANDLER = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p, POINTER(c_uint8), c_int,
                                         c_int)


COMPRESSION_T4_1D = 0x02
COMPRESSION_T4_2D = 0x04
COMPRESSION_T6 = 0x08
MODEMS_ALL = 0x01 | 0x02 | 0x04  # V.27ter, V.29, V.17
T4_COMPRESSION_ITU_T6 = 3  # t4_rx.h: the coding of the TIFF a receiver writes

T38_TERMINAL_OPTION_NO_PACING = 0x01
G711_ALAW = 0

# t30.h phase E completion codes, in the header's order (the enum starts at 0).
T30_ERR_NAMES = (
    "OK", "CEDTONE", "T0_EXPIRED", "T1_EXPIRED", "T3_EXPIRED", "HDLC_CARRIER", "CANNOT_TRAIN",
    "OPER_INT_FAIL", "INCOMPATIBLE", "RX_INCAPABLE", "TX_INCAPABLE", "NORESSUPPORT",
    "NOSIZESUPPORT", "UNEXPECTED",
    "TX_BADDCS", "TX_BADPG", "TX_ECMPHD", "TX_GOTDCN", "TX_INVALRSP", "TX_NODIS", "TX_PHBDEAD",
    "TX_PHDDEAD", "TX_T5EXP",
    "RX_ECMPHD", "RX_GOTDCS", "RX_INVALCMD", "RX_NOCARRIER", "RX_NOEOL", "RX_NOFAX",
    "RX_T2EXPDCN", "RX_T2EXPD", "RX_T2EXPFAX", "RX_T2EXPMPS", "RX_T2EXPRR", "RX_T2EXP",
    "RX_DCNWHY", "RX_DCNDATA", "RX_DCNFAX", "RX_DCNPHD", "RX_DCNRRD", "RX_DCNNORTN",
    "FILEERROR", "NOPAGE", "BADTIFF", "BADPAGE", "BADTAG", "BADTIFFHDR", "NOMEM",
    "RETRYDCN", "CALLDROPPED",
    "NOPOLL", "IDENT_UNACCEPTABLE", "SUB_UNACCEPTABLE", "SEP_UNACCEPTABLE", "PSA_UNACCEPTABLE",
    "SID_UNACCEPTABLE", "PWD_UNACCEPTABLE", "TSA_UNACCEPTABLE", "IRA_UNACCEPTABLE",
    "CIA_UNACCEPTABLE", "ISP_UNACCEPTABLE", "CSA_UNACCEPTABLE",
)
T30_ERR = enum.IntEnum("T30_ERR", {name: i for i, name in enumerate(T30_ERR_NAMES)})


class SpandspMissing(RuntimeError):
    """libspandsp is not installed (Debian package libspandsp2)."""


def _declare(lib: ctypes.CDLL) -> None:
    sigs: dict[str, tuple[object, list[object]]] = {
        # fax.h: a T.30 terminal over audio
        "fax_init": (c_void_p, [c_void_p, c_int]),
        "fax_get_t30_state": (c_void_p, [c_void_p]),
        "fax_rx": (c_int, [c_void_p, POINTER(c_int16), c_int]),
        "fax_tx": (c_int, [c_void_p, POINTER(c_int16), c_int]),
        "fax_rx_fillin": (c_int, [c_void_p, c_int]),
        "fax_set_transmit_on_idle": (None, [c_void_p, c_int]),
        "fax_free": (c_int, [c_void_p]),
        # t38_terminal.h / t38_core.h
        "t38_terminal_init": (c_void_p, [c_void_p, c_int, T38_TX_PACKET_HANDLER, c_void_p]),
        "t38_terminal_get_t30_state": (c_void_p, [c_void_p]),
        "t38_terminal_get_t38_core_state": (c_void_p, [c_void_p]),
        "t38_terminal_send_timeout": (c_int, [c_void_p, c_int]),
        "t38_terminal_set_config": (None, [c_void_p, c_int]),
        "t38_terminal_free": (c_int, [c_void_p]),
        "t38_core_rx_ifp_packet": (c_int, [c_void_p, POINTER(c_uint8), c_int, c_uint16]),
        # t30_api.h / t30.h
        "t30_set_tx_ident": (c_int, [c_void_p, c_char_p]),
        "t30_get_rx_ident": (c_char_p, [c_void_p]),
        "t30_set_tx_file": (None, [c_void_p, c_char_p, c_int, c_int]),
        "t30_set_rx_file": (None, [c_void_p, c_char_p, c_int]),
        "t30_set_ecm_capability": (c_int, [c_void_p, c_int]),
        "t30_set_rx_encoding": (c_int, [c_void_p, c_int]),
        "t30_set_supported_compressions": (c_int, [c_void_p, c_int]),
        "t30_set_supported_modems": (c_int, [c_void_p, c_int]),
        "t30_set_phase_b_handler": (None, [c_void_p, PHASE_B_HANDLER, c_void_p]),
        "t30_set_phase_d_handler": (None, [c_void_p, PHASE_D_HANDLER, c_void_p]),
        "t30_set_phase_e_handler": (None, [c_void_p, PHASE_E_HANDLER, c_void_p]),
        "t30_get_transfer_statistics": (None, [c_void_p, POINTER(Stats)]),
        "t30_terminate": (None, [c_void_p]),
        "t30_completion_code_to_str": (c_char_p, [c_int]),
        # g711.h: the codec of the audio path
        "g711_init": (c_void_p, [c_void_p, c_int]),
        "g711_encode": (c_int, [c_void_p, POINTER(c_uint8), POINTER(c_int16), c_int]),
        "g711_decode": (c_int, [c_void_p, POINTER(c_int16), POINTER(c_uint8), c_int]),
        "g711_free": (c_int, [c_void_p]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


def _check_stats_layout(lib: ctypes.CDLL) -> None:
    """A fresh sending terminal reports pages_in_file < 0 or 0 and status OK; a wrong struct
    layout shows as garbage here long before it corrupts a page count."""
    fax = lib.fax_init(None, 1)
    try:
        stats = Stats()
        lib.t30_get_transfer_statistics(lib.fax_get_t30_state(fax), ctypes.byref(stats))
        if stats.current_status != 0 or stats.pages_tx != 0 or stats.pages_rx != 0:
            raise SpandspMissing("libspandsp's t30_stats_t layout is not the 0.0.6 one")
    finally:
        lib.fax_free(fax)


@functools.cache
def load() -> ctypes.CDLL:
    """The library, declared and checked; SpandspMissing when it is not installed."""
    # By soname, never find_library("spandsp"): that may pick a libspandsp.so.3, whose
    # t30_stats_t and phase handlers differ from the declarations here.
    try:
        lib = ctypes.CDLL(SONAME)
    except OSError as exc:
        raise SpandspMissing(
            "libspandsp is not installed (Debian package libspandsp2)") from exc
    _declare(lib)
    _check_stats_layout(lib)
    return lib


def completion_text(code: int) -> str:
    """spandsp's own words for a phase E code ("OK", "The call dropped prematurely"...)."""
    raw = load().t30_completion_code_to_str(code)
    return raw.decode("ascii", "replace") if raw else f"T.30 code {code}"
