"""The tray's icons, drawn by code: an ARGB32 pixmap per state and size, as a
StatusNotifierItem's `IconPixmap` carries them (every host renders a pixmap; an icon
name needs a theme that has it). A distinct shape and colour for each state, so that
it reads at 16 pixels and without colour vision:

    listening  a green disc              hearing  a green disc with a white ring
    thinking   an amber disc, three dots  typing   a blue square with lines of text
    paused     a grey disc, two bars      loading  a grey ring
    error      a red disc with an X       stopped  a red ring with an X

Pure: `pixmap(state, size)` returns the bytes (A, R, G, B per pixel, row by row, as the
specification's network byte order wants), the same every time.
"""

from collections.abc import Callable
from functools import cache

Shape = Callable[[float, float], bool]  # (x, y) in [-1, 1], y down -> inside
RGB = tuple[int, int, int]

GREEN: RGB = (0x2E, 0xB8, 0x4C)
AMBER: RGB = (0xF0, 0xA0, 0x20)
BLUE: RGB = (0x30, 0x7F, 0xE0)
GREY: RGB = (0x90, 0x90, 0x90)
RED: RGB = (0xD8, 0x30, 0x30)
WHITE: RGB = (0xFF, 0xFF, 0xFF)
# The colour each state's icon is mostly made of (a test looks for it on the bar).
MAIN_COLOUR = {
    "listening": GREEN,
    "hearing": GREEN,
    "thinking": AMBER,
    "typing": BLUE,
    "paused": GREY,
    "loading": GREY,
    "error": RED,
    "stopped": RED,
}
SIZES = (16, 22, 24, 32, 48, 64)  # a host takes the one nearest its own size
SAMPLES = 4  # per side of a pixel: its edge pixels are blended, its inside exact


def disc(radius: float, cx: float = 0.0, cy: float = 0.0) -> Shape:
    return lambda x, y: (x - cx) ** 2 + (y - cy) ** 2 <= radius**2


def ring(outer: float, inner: float) -> Shape:
    return lambda x, y: inner**2 <= x * x + y * y <= outer**2


def box(left: float, top: float, right: float, bottom: float) -> Shape:
    return lambda x, y: left <= x <= right and top <= y <= bottom


def cross(half: float, width: float) -> Shape:
    """An X within [-half, half]², its strokes `width` wide."""
    return lambda x, y: abs(x) <= half and abs(y) <= half and min(abs(x - y), abs(x + y)) <= width


LAYERS: dict[str, list[tuple[Shape, RGB]]] = {
    "listening": [(disc(0.9), GREEN)],
    "hearing": [(disc(0.9), GREEN), (ring(0.62, 0.44), WHITE), (disc(0.2), WHITE)],
    "thinking": [(disc(0.9), AMBER), *((disc(0.16, cx), WHITE) for cx in (-0.45, 0.0, 0.45))],
    "typing": [
        (box(-0.85, -0.7, 0.85, 0.7), BLUE),
        *((box(-0.6, y, 0.6, y + 0.14), WHITE) for y in (-0.4, -0.07, 0.26)),
    ],
    "paused": [(disc(0.9), GREY), (box(-0.4, -0.45, -0.12, 0.45), WHITE), (box(0.12, -0.45, 0.4, 0.45), WHITE)],
    "loading": [(ring(0.9, 0.6), GREY)],
    "error": [(disc(0.9), RED), (cross(0.42, 0.2), WHITE)],
    "stopped": [(ring(0.95, 0.72), RED), (cross(0.4, 0.14), RED)],
}


def colours_of(state: str) -> set[RGB]:
    """Every colour the state's icon is drawn with (inside its shapes: exact)."""
    return {colour for _, colour in LAYERS[state]}


def colour_at(layers: list[tuple[Shape, RGB]], x: float, y: float) -> RGB | None:
    """The colour of the topmost layer at (x, y); None where no layer is (transparent)."""
    found = None
    for inside, colour in layers:
        if inside(x, y):
            found = colour
    return found


@cache
def pixmap(state: str, size: int) -> bytes:
    layers = LAYERS[state]
    out = bytearray()
    step = 2.0 / (size * SAMPLES)
    for row in range(size):
        for column in range(size):
            hits = [
                colour_at(layers, -1 + (column * SAMPLES + i + 0.5) * step, -1 + (row * SAMPLES + j + 0.5) * step)
                for j in range(SAMPLES)
                for i in range(SAMPLES)
            ]
            painted = [hit for hit in hits if hit is not None]
            if not painted:
                out += b"\0\0\0\0"
                continue
            # Colour averaged over the painted samples, coverage as alpha (not premultiplied).
            rgb = [round(sum(hit[k] for hit in painted) / len(painted)) for k in range(3)]
            out += bytes([round(255 * len(painted) / len(hits)), *rgb])
    return bytes(out)


def pixmaps(state: str) -> list[list]:
    """`IconPixmap`'s value, a(iiay): every size of the state's icon."""
    return [[size, size, pixmap(state, size)] for size in SIZES]
