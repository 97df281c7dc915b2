"""The desktop app (PySide6): a thin view over the engine and the document model.

Modules: :mod:`app` (entry point ``run``), :mod:`main_window`, :mod:`canvas` (zoomable image view),
:mod:`render` (numpy-only view images), :mod:`worker` (background tasks), panels and dialogs.
No matting, compositing or file-format logic lives here: it calls :mod:`instmatt_app.pipeline`,
:mod:`instmatt_app.core.document` and :mod:`instmatt_app.io`.
"""
