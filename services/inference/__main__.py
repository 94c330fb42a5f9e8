"""Inference service: photo in, every face's apparent expression out.

`python -m services.inference` serves; `python -m services.inference analyze [--json] PATH...` analyses files.
"""

from services.inference.cli import main

main()
