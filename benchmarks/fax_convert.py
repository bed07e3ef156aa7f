"""Fax document pipeline and spandsp engine benchmark.

    .venv/bin/python benchmarks/fax_convert.py [--pages 20] [--runs 5]

Generates a PDF of pages full of text (60 lines of 10 pt each), then times, per page:
  * PDF → fax TIFF through FaxConverter.to_fax (pikepdf checks, ghostscript tiffg4, page count,
    thumbnail), against the in-run baseline of the bare ghostscript command on the same file;
  * fax TIFF → PDF through FaxConverter.to_pdf (img2pdf, G4 embedded), against bare
    img2pdf.convert; and a G3 TIFF (re-encoded to G4 first) for comparison;
  * PNG photo → fax page (Pillow scale + dither + G4).
Then the spandsp engine: a 4-page fax back to back over G.711 audio, over T.38 paced (packets
at modem rate) and unpaced: line time / CPU time = multiple of real time, and CPU per page.
Target: ≤ 50 ms per page each way. Exits non-zero only when it could not run (ghostscript or
libspandsp missing).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image

from fax import spandsp_lib
from fax.documents import FAX_WIDTH, FaxConverter, page_rows
from fax.samples import make_image, make_text_pdf
from fax.spandsp import BackToBack, Transport

TARGET_MS = 50.0


def median_ms(samples: list[float], pages: int) -> str:
    per_page = [s * 1000 / pages for s in samples]
    return (f"median {statistics.median(per_page):6.1f} ms/page "
            f"(min {min(per_page):.1f}, max {max(per_page):.1f})")


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if shutil.which("gs") is None:
        print("ghostscript (gs) is not installed: apt-get install ghostscript", file=sys.stderr)
        return 2
    try:
        spandsp_lib.load()
    except spandsp_lib.SpandspMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    pages = args.pages
    with tempfile.TemporaryDirectory(prefix="fax-bench-") as tmp_name:
        tmp = Path(tmp_name)
        pdf = make_text_pdf(tmp / "letter.pdf", pages)
        conv = FaxConverter(tmp / "work")
        print(f"document: {pages} pages of text, {pdf.stat().st_size / 1024:.0f} KB PDF; "
              f"{args.runs} runs each")

        docs = []

        def product_to_fax():
            docs.append(asyncio.run(conv.to_fax(pdf)))

        def bare_gs():
            subprocess.run(
                ["gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=tiffg4", "-r204x196",
                 f"-g{FAX_WIDTH}x{page_rows(docs[0].paper, docs[0].resolution)}",
                 "-dFIXEDMEDIA", "-dPDFFitPage", f"-sOutputFile={tmp / 'bare.tiff'}", str(pdf)],
                check=True)

        to_fax = timed(product_to_fax, args.runs)
        gs_only = timed(bare_gs, args.runs)
        doc = docs[-1]
        tiff_kb = doc.tiff.stat().st_size / 1024
        print(f"PDF → TIFF  FaxConverter.to_fax   {median_ms(to_fax, pages)}  "
              f"[target ≤ {TARGET_MS:.0f}]")
        print(f"            bare gs (baseline)    {median_ms(gs_only, pages)}  "
              f"(G4 TIFF {tiff_kb / pages:.0f} KB/page)")

        import img2pdf

        to_pdf = timed(lambda: asyncio.run(conv.to_pdf(doc.tiff, tmp / "out.pdf")), args.runs)
        bare_img2pdf = timed(lambda: img2pdf.convert(str(doc.tiff)), args.runs)
        print(f"TIFF → PDF  FaxConverter.to_pdf   {median_ms(to_pdf, pages)}  "
              f"[target ≤ {TARGET_MS:.0f}]")
        print(f"            bare img2pdf          {median_ms(bare_img2pdf, pages)}")

        g3 = tmp / "g3.tiff"
        with Image.open(doc.tiff) as im:
            frames = []
            for i in range(im.n_frames):
                im.seek(i)
                frames.append(im.copy())
        frames[0].save(g3, format="TIFF", compression="group3", save_all=True,
                       append_images=frames[1:], dpi=(204, 196))
        g3_pdf = timed(lambda: asyncio.run(conv.to_pdf(g3, tmp / "g3.pdf")), args.runs)
        print(f"            G3 TIFF (→ G4 first)  {median_ms(g3_pdf, pages)}")

        png = make_image(tmp / "photo.png", "PNG", (2480, 3508))  # an A4 scan at 300 dpi
        png_fax = timed(lambda: asyncio.run(conv.to_fax(png)), args.runs)
        print(f"PNG → TIFF  A4 scan 2480×3508     {median_ms(png_fax, 1)}")

        # the engine: 4 pages of the document
        four = tmp / "four.tiff"
        frames[0].save(four, format="TIFF", compression="group4", save_all=True,
                       append_images=frames[1:4], dpi=(204, 196))
        for transport, paced, words in ((Transport.AUDIO, False, "G.711 audio"),
                                        (Transport.T38, True, "T.38 paced "),
                                        (Transport.T38, False, "T.38 unpaced")):
            cpu, line_s = [], []
            for _ in range(max(1, args.runs // 2)):
                with BackToBack(transport, four, tmp / "rx.tiff", paced=paced) as b2b:
                    t0 = time.process_time()
                    sent, _ = b2b.run()
                    cpu.append(time.process_time() - t0)
                    line_s.append(b2b.samples / spandsp_lib.SAMPLE_RATE)
                assert sent.code == 0 and sent.pages == 4, sent
            c = statistics.median(cpu)
            line = statistics.median(line_s)
            print(f"spandsp {words}  4 pages: {line:6.1f} s of line time in {c * 1000:4.0f} ms "
                  f"CPU = {line / c:5.0f}× real time ({c * 1000 / 4:.1f} ms CPU per page)")
        received = tmp / "rx.tiff"  # the last exchange's pages, as spandsp writes them
        rx_pdf = timed(lambda: asyncio.run(conv.to_pdf(received, tmp / "rx.pdf")), args.runs)
        print(f"TIFF → PDF  received by spandsp   {median_ms(rx_pdf, 4)}  (LSB-first G4)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
