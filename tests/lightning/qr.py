"""Read back the text of a QR code as the page draws it (segno's SVG path), independently of
segno: the path's runs become a module matrix, the matrix a bitmap, and OpenCV decodes it."""

from __future__ import annotations

import re

import numpy as np


def svg_matrix(svg) -> list[list[bool]]:
    path = svg.find("path", attrs={"stroke": "#000"})  # the dark modules (not the background)
    d = path["d"]
    width = int(svg["width"]) // 5  # the page draws at scale 5
    grid = [[False] * width for _ in range(width)]
    x = y = 0.0
    for cmd, a, b in re.findall(r"([Mmh])(-?\d+(?:\.\d+)?)(?:\s(-?\d+(?:\.\d+)?))?", d):
        if cmd == "M":
            x, y = float(a), float(b)
        elif cmd == "m":
            x, y = x + float(a), y + float(b)
        else:
            for i in range(int(float(a))):
                grid[int(y)][int(x) + i] = True
            x += float(a)
    return grid


def decode_svg(svg) -> str:
    import cv2

    grid = svg_matrix(svg)
    base = np.array([[0 if dark else 255 for dark in row] for row in grid], dtype=np.uint8)
    # OpenCV's detectors miss some dense codes at one size and read them at another.
    for detector in (cv2.QRCodeDetector(), cv2.QRCodeDetectorAruco()):
        for scale in (8, 6, 10, 4, 12):
            image = np.kron(base, np.ones((scale, scale), dtype=np.uint8))
            text, _points, _ = detector.detectAndDecode(image)
            if text:
                return text
    raise AssertionError("OpenCV found no QR code in the page's SVG")
