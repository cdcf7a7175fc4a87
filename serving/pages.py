"""Web pages for collectors and treasurers (routes come with the pages; templates in ``templates/``).

Pages share ``serving.services`` with the API and authenticate with ``serving.deps.authenticate``.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
