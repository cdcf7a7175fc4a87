"""The Encaisse HTTP service: score API, worklist, forecast and KPI endpoints, and (later) web pages.

``serving.app.create_app`` builds the FastAPI app; ``encaisse serve`` runs it under uvicorn.
"""
